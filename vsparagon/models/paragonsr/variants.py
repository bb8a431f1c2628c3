"""The ParagonSR variant table (seed 000): feature dim and groups x blocks per variant."""

from __future__ import annotations

from typing import TypedDict


class VariantSpec(TypedDict):
    """Shape of one variant; everything else takes the :class:`ParagonConfig` defaults."""

    dim: int
    num_groups: int
    blocks_per_group: int


#: name -> (feature dim, residual groups, blocks per group), exactly as the seed's table.
VARIANTS: dict[str, VariantSpec] = {
    "paragonsr_tiny": {"dim": 32, "num_groups": 3, "blocks_per_group": 3},
    "paragonsr_xs": {"dim": 48, "num_groups": 4, "blocks_per_group": 4},
    "paragonsr_s": {"dim": 64, "num_groups": 6, "blocks_per_group": 6},
    "paragonsr_m": {"dim": 96, "num_groups": 8, "blocks_per_group": 8},
    "paragonsr_l": {"dim": 128, "num_groups": 10, "blocks_per_group": 10},
    "paragonsr_xl": {"dim": 160, "num_groups": 12, "blocks_per_group": 12},
}
