"""The model table: which architectures exist, their variants and scales, as data.

This is the one place the seed's variant table lives. ``vsparagon.models`` builds
the PyTorch modules for these names (it registers one builder per architecture);
the runtime, the plugin and the CLI learn names and scales from here without
importing torch.

Names: a *variant* is one size of one architecture, ``<arch>_<size>`` (e.g.
``paragonsr_tiny``); the short form ``tiny`` means ParagonSR's. What ships is a
separate concept, a *release* (:mod:`vsparagon.catalogue.shipped`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from vsparagon.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class Architecture:
    """One architecture family and its variants."""

    name: str
    """Architecture name, the prefix of its variants and shipped files (``paragonsr``)."""
    summary: str
    """One line for listings."""
    variants: Mapping[str, Mapping[str, int]]
    """Variant name -> the hyperparameters that make it that size (the rest are the architecture's defaults)."""
    scales: tuple[int, ...]
    """Upscaling factors every variant supports."""


PARAGONSR = Architecture(
    name="paragonsr",
    summary="ParagonSR: reparameterizable local convolutional SR (seed 000), tiny to xl",
    # Seed 000's table: feature dim, residual groups x blocks per group.
    variants={
        "paragonsr_tiny": {"dim": 32, "num_groups": 3, "blocks_per_group": 3},
        "paragonsr_xs": {"dim": 48, "num_groups": 4, "blocks_per_group": 4},
        "paragonsr_s": {"dim": 64, "num_groups": 6, "blocks_per_group": 6},
        "paragonsr_m": {"dim": 96, "num_groups": 8, "blocks_per_group": 8},
        "paragonsr_l": {"dim": 128, "num_groups": 10, "blocks_per_group": 10},
        "paragonsr_xl": {"dim": 160, "num_groups": 12, "blocks_per_group": 12},
    },
    scales=(1, 2, 3, 4),
)

EHRSR = Architecture(
    name="ehrsr",
    summary="EHR-SR: hybrid multi-scale research network (seed 003): attention, selective scan, experts",
    variants={
        "ehrsr_tiny": {"dim": 16, "levels": 2, "trunk_blocks": 2, "heads": 4, "experts": 3},
        "ehrsr_base": {
            "dim": 32,
            "levels": 2,
            "trunk_blocks": 4,
            "heads": 4,
            "experts": 4,
            "enc_blocks": 2,
            "dec_blocks": 2,
        },
    },
    scales=(2, 4),
)

HERMES = Architecture(
    name="hermes",
    summary="HERMES-IR/SR: degradation-aware dual-stream research network (seed 004) with routed experts",
    variants={
        "hermes_tiny": {
            "dim": 32,
            "trunk_stride": 4,
            "stream_blocks": 1,
            "fusion_blocks": 2,
            "trunk_blocks": 2,
            "heads": 2,
        },
        "hermes_base": {
            "dim": 64,
            "trunk_stride": 2,
            "stream_blocks": 2,
            "fusion_blocks": 4,
            "trunk_blocks": 4,
            "heads": 4,
        },
    },
    scales=(2, 4),
)

#: Architecture name -> its entry. The first is the default for short variant names.
ARCHITECTURES: dict[str, Architecture] = {arch.name: arch for arch in (PARAGONSR, EHRSR, HERMES)}
DEFAULT_ARCH = "paragonsr"
#: Upscaling factors the plugin accepts (any architecture's).
SCALES = tuple(sorted({s for arch in ARCHITECTURES.values() for s in arch.scales}))
#: (input, output) channels a model may have, ours or another project's: RGB, or grey (run plane by
#: plane on colour clips).
CHANNELS = ((3, 3), (1, 1))


def variant_names(arch: str | None = None) -> list[str]:
    """Registered variant names (of ``arch``, or of every architecture), smallest first."""
    archs = [ARCHITECTURES[arch]] if arch else list(ARCHITECTURES.values())
    return [name for a in archs for name in a.variants]


def short_name(variant: str) -> str:
    """``paragonsr_tiny`` -> ``tiny`` (ParagonSR's short form); other architectures keep their prefix."""
    return variant.removeprefix(f"{DEFAULT_ARCH}_")


def split_arch(name: str) -> tuple[Architecture, str]:
    """``"ehrsr_tiny"`` -> (its architecture, ``"tiny"``); a name with no known prefix is ParagonSR's."""
    key = name.strip().lower()
    for arch in sorted(ARCHITECTURES.values(), key=lambda a: -len(a.name)):
        if key.startswith(f"{arch.name}_"):
            return arch, key.removeprefix(f"{arch.name}_")
    return ARCHITECTURES[DEFAULT_ARCH], key


def canonical_variant(name: object) -> str:
    """Map ``"tiny"`` or ``"paragonsr_tiny"`` (any case) to the registered name.

    Raises:
        ConfigError: listing the valid names when ``name`` is unknown.
    """
    if not isinstance(name, str):
        raise ConfigError(f"variant must be a string, got {type(name).__name__}")
    arch, size = split_arch(name)
    full = f"{arch.name}_{size}"
    if full not in arch.variants:
        short = ", ".join(short_name(v) for v in variant_names())
        raise ConfigError(f"unknown variant {name!r}; valid variants: {short} (or with the '{DEFAULT_ARCH}_' prefix)")
    return full


def architecture_of(variant: str) -> Architecture:
    """The architecture a registered variant belongs to."""
    return split_arch(canonical_variant(variant))[0]


def variant_spec(variant: str) -> Mapping[str, int]:
    """The size hyperparameters of a registered variant."""
    full = canonical_variant(variant)
    return architecture_of(full).variants[full]


def check_scale(scale: object, arch: str = DEFAULT_ARCH) -> int:
    """Return ``scale`` if ``arch`` supports it, else raise ConfigError listing the supported scales."""
    scales = ARCHITECTURES[arch].scales
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in scales:
        raise ConfigError(f"unsupported scale {scale!r}; supported scales: {', '.join(map(str, scales))}")
    return scale


__all__ = [
    "ARCHITECTURES",
    "DEFAULT_ARCH",
    "EHRSR",
    "HERMES",
    "SCALES",
    "Architecture",
    "architecture_of",
    "canonical_variant",
    "check_scale",
    "short_name",
    "split_arch",
    "variant_names",
    "variant_spec",
]
