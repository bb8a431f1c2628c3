"""Build models by name and describe them for the runtime."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from vsparagon.descriptor import ModelDescriptor
from vsparagon.errors import ConfigError
from vsparagon.models.fusion import is_fused
from vsparagon.models.paragonsr.arch import ParagonConfig, ParagonSR
from vsparagon.models.paragonsr.variants import VARIANTS

#: Upscaling factors every variant supports.
SCALES = (1, 2, 3, 4)
ARCH = "paragonsr"


def variant_names() -> list[str]:
    """Registered variant names, smallest first."""
    return list(VARIANTS)


def canonical_variant(name: str) -> str:
    """Map ``"tiny"`` or ``"paragonsr_tiny"`` (any case) to the registered name.

    Raises:
        ConfigError: listing the valid names when ``name`` is unknown.
    """
    if not isinstance(name, str):
        raise ConfigError(f"variant must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    if not key.startswith(f"{ARCH}_"):
        key = f"{ARCH}_{key}"
    if key not in VARIANTS:
        short = ", ".join(v.removeprefix(f"{ARCH}_") for v in VARIANTS)
        raise ConfigError(f"unknown variant {name!r}; valid variants: {short} (or with the '{ARCH}_' prefix)")
    return key


def check_scale(scale: object) -> int:
    """Return ``scale`` if it is a supported upscaling factor, else raise ConfigError."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in SCALES:
        raise ConfigError(f"unsupported scale {scale!r}; supported scales: {', '.join(map(str, SCALES))}")
    return scale


def create(name: str, scale: int = 2) -> ParagonSR:
    """Build the training form of a registered variant with fresh weights.

    Args:
        name: variant, e.g. ``"tiny"`` or ``"paragonsr_s"``.
        scale: upscaling factor, one of :data:`SCALES`.
    """
    variant = canonical_variant(name)
    cfg = ParagonConfig(scale=check_scale(scale), **VARIANTS[variant])
    return ParagonSR(cfg, variant=variant)


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
        fp16_safe=True,
        fused=is_fused(model),
        config=asdict(cfg),
    )
