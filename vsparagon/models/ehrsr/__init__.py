"""EHR-SR (seed 003); its variant table lives in :mod:`vsparagon.catalogue.table`."""

from __future__ import annotations

from dataclasses import asdict

from vsparagon.catalogue.descriptor import UNKNOWN_RADIUS, ModelDescriptor
from vsparagon.catalogue.table import EHRSR as CATALOGUE
from vsparagon.models.ehrsr.arch import EHRSR, EHRSRConfig
from vsparagon.models.entry import ArchEntry
from vsparagon.models.fusion import is_fused


def describe(model: EHRSR) -> ModelDescriptor:
    """EHR-SR sees the whole picture: its descriptor says the receptive field is global."""
    cfg = model.cfg
    return ModelDescriptor(
        arch=CATALOGUE.name,
        variant=model.variant,
        scale=cfg.scale,
        in_channels=cfg.in_channels,
        out_channels=cfg.out_channels,
        receptive_radius=UNKNOWN_RADIUS,
        global_context=True,
        fused=is_fused(model),
        config=asdict(cfg),
    )


ENTRY = ArchEntry(name=CATALOGUE.name, module=EHRSR, config=EHRSRConfig, describe=describe)

__all__ = ["EHRSR", "ENTRY", "EHRSRConfig", "describe"]
