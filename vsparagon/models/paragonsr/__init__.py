"""The ParagonSR family (tiny to xl)."""

from vsparagon.models.paragonsr.arch import ParagonConfig, ParagonSR
from vsparagon.models.paragonsr.variants import VARIANTS

__all__ = ["VARIANTS", "ParagonConfig", "ParagonSR"]
