"""Build the torch modules the catalogue names, and describe them for the runtime.

Each architecture package exports one :class:`ArchEntry` (its module class, its config
dataclass and how to describe a model); :data:`ENTRIES` lists them explicitly, and every
function here dispatches on the catalogue's architecture name.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from torch import nn

from vsparagon.catalogue.descriptor import ModelDescriptor
from vsparagon.catalogue.table import (
    PARAGONSR,
    SCALES,
    architecture_of,
    canonical_variant,
    check_scale,
    variant_names,
)
from vsparagon.errors import ConfigError
from vsparagon.models import ehrsr, hermes
from vsparagon.models.entry import ArchEntry
from vsparagon.models.fusion import is_fused
from vsparagon.models.paragonsr.arch import GATES, ParagonConfig, ParagonSR


def _check_paragon(cfg: ParagonConfig) -> None:
    if cfg.gate not in GATES:
        raise ConfigError(f"unknown gate {cfg.gate!r}; one of {', '.join(GATES)}")


def _describe_paragon(model: ParagonSR) -> ModelDescriptor:
    cfg = model.cfg
    return ModelDescriptor(
        arch=PARAGONSR.name,
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


PARAGON_ENTRY = ArchEntry(
    name=PARAGONSR.name, module=ParagonSR, config=ParagonConfig, describe=_describe_paragon, validate=_check_paragon
)
#: Architecture name -> entry, one per architecture of the catalogue.
ENTRIES: dict[str, ArchEntry] = {e.name: e for e in (PARAGON_ENTRY, ehrsr.ENTRY, hermes.ENTRY)}
ARCH = PARAGONSR.name
#: Architecture name -> its model class.
BUILDERS: dict[str, type[nn.Module]] = {name: e.module for name, e in ENTRIES.items()}


def create(name: str, scale: int = 2, *, gate: str | None = None, **options: Any) -> nn.Module:
    """Build the training form of a registered variant with fresh weights.

    Args:
        name: variant, e.g. ``"tiny"``, ``"paragonsr_s"`` or ``"ehrsr_tiny"``.
        scale: upscaling factor, one the architecture supports.
        gate: ParagonSR's block design (:data:`~vsparagon.models.paragonsr.arch.GATES`); None = the default.
        options: other fields of the architecture's config (e.g. an ablation switch), overriding the variant's.

    Raises:
        ConfigError: an unknown variant, scale or option, naming the valid ones.
    """
    variant = canonical_variant(name)
    arch = architecture_of(variant)
    entry = ENTRIES[arch.name]
    if gate is not None:
        if entry is not PARAGON_ENTRY:
            raise ConfigError(f"gate={gate!r} is a ParagonSR option; {variant} has no gate")
        options["gate"] = gate
    values = {**arch.variants[variant], **options, "scale": check_scale(scale, arch.name)}
    return entry.module(build_config(entry, values, source=variant), variant=variant)


def build_config(entry: ArchEntry, values: dict[str, Any], *, source: str) -> Any:
    """``entry``'s config from ``values``, rejecting unknown and missing fields."""
    known = {f.name for f in fields(entry.config)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown {entry.name} config fields {unknown}; known: {', '.join(sorted(known))}")
    try:
        cfg = entry.config(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: invalid {entry.name} config ({exc})") from None
    entry.validate(cfg)
    return cfg


def config_from_dict(data: dict[str, Any], *, source: str, arch: str = ARCH) -> Any:
    """Rebuild an architecture's config from descriptor metadata, rejecting unknown keys."""
    if arch not in ENTRIES:
        raise ConfigError(f"{source}: architecture {arch!r} is not supported (one of {', '.join(ENTRIES)})")
    cfg = build_config(ENTRIES[arch], data, source=source)
    check_scale(cfg.scale, arch)
    return cfg


def entry_of(model: nn.Module) -> ArchEntry:
    """The registry entry ``model`` is an instance of.

    Raises:
        TypeError: ``model`` is not one of the registered architectures.
    """
    for entry in ENTRIES.values():
        if isinstance(model, entry.module):
            return entry
    names = ", ".join(e.module.__name__ for e in ENTRIES.values())
    raise TypeError(f"expected a model of a registered architecture ({names}), got {type(model).__name__}")


def describe(model: nn.Module) -> ModelDescriptor:
    """The descriptor that travels with ``model``'s checkpoints and exports."""
    return entry_of(model).describe(model)


__all__ = [
    "ARCH",
    "BUILDERS",
    "ENTRIES",
    "SCALES",
    "ArchEntry",
    "build_config",
    "canonical_variant",
    "check_scale",
    "config_from_dict",
    "create",
    "describe",
    "entry_of",
    "variant_names",
]
