"""Build the torch modules the catalogue names, and describe them for the runtime."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from vsparagon.catalogue.descriptor import ModelDescriptor
from vsparagon.catalogue.table import PARAGONSR, SCALES, canonical_variant, check_scale, variant_names
from vsparagon.errors import ConfigError
from vsparagon.models.fusion import is_fused
from vsparagon.models.paragonsr.arch import GATES, ParagonConfig, ParagonSR

ARCH = PARAGONSR.name
#: Architecture name -> the torch module built for its variants (the catalogue's table names them).
BUILDERS: dict[str, type[ParagonSR]] = {ARCH: ParagonSR}


def create(name: str, scale: int = 2, *, gate: str | None = None) -> ParagonSR:
    """Build the training form of a registered variant with fresh weights.

    Args:
        name: variant, e.g. ``"tiny"`` or ``"paragonsr_s"``.
        scale: upscaling factor, one of :data:`SCALES`.
        gate: the block design (:data:`~vsparagon.models.paragonsr.arch.GATES`); None = the default.
    """
    variant = canonical_variant(name)
    spec = PARAGONSR.variants[variant]
    design: dict[str, Any] = {} if gate is None else {"gate": _check_gate(gate)}
    cfg = ParagonConfig(
        scale=check_scale(scale),
        dim=spec["dim"],
        num_groups=spec["num_groups"],
        blocks_per_group=spec["blocks_per_group"],
        **design,
    )
    return BUILDERS[ARCH](cfg, variant=variant)


def _check_gate(gate: str) -> str:
    if gate not in GATES:
        raise ConfigError(f"unknown gate {gate!r}; one of {', '.join(GATES)}")
    return gate


def config_from_dict(data: dict[str, Any], *, source: str) -> ParagonConfig:
    """Rebuild a :class:`ParagonConfig` from descriptor metadata, rejecting unknown keys."""
    known = {f.name for f in fields(ParagonConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown ParagonSR config fields {unknown}")
    try:
        cfg = ParagonConfig(**data)
    except TypeError as exc:
        raise ConfigError(f"{source}: incomplete ParagonSR config ({exc})") from None
    check_scale(cfg.scale)
    _check_gate(cfg.gate)
    return cfg


def describe(model: ParagonSR) -> ModelDescriptor:
    """The descriptor that travels with ``model``'s checkpoints and exports."""
    cfg = model.cfg
    return ModelDescriptor(
        arch=ARCH,
        variant=model.variant,
        scale=cfg.scale,
        in_channels=cfg.in_channels,
        out_channels=cfg.out_channels,
        multiple_of=1,
        receptive_radius=cfg.receptive_radius,
        fp16_safe=cfg.gate != "gelu",  # the bounded designs stay finite in fp16 (tests/models/test_bounded.py)
        fused=is_fused(model),
        config=asdict(cfg),
    )


__all__ = [
    "ARCH",
    "BUILDERS",
    "SCALES",
    "canonical_variant",
    "check_scale",
    "config_from_dict",
    "create",
    "describe",
    "variant_names",
]
