"""HERMES-IR/SR (seed 004); its variant table lives in :mod:`vsparagon.catalogue.table`."""

from __future__ import annotations

from dataclasses import asdict

from vsparagon.catalogue.descriptor import UNKNOWN_RADIUS, ModelDescriptor
from vsparagon.catalogue.table import HERMES as CATALOGUE
from vsparagon.models.entry import ArchEntry
from vsparagon.models.fusion import is_fused
from vsparagon.models.hermes.arch import Hermes, HermesConfig


def describe(model: Hermes) -> ModelDescriptor:
    """HERMES sees the whole picture: its descriptor says the receptive field is global."""
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


ENTRY = ArchEntry(name=CATALOGUE.name, module=Hermes, config=HermesConfig, describe=describe)

__all__ = ["ENTRY", "Hermes", "HermesConfig", "describe"]
