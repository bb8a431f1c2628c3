"""The ParagonSR family (tiny to xl); its variant table lives in :mod:`vsparagon.catalogue.table`."""

from vsparagon.catalogue.table import PARAGONSR
from vsparagon.models.paragonsr.arch import ParagonConfig, ParagonSR

#: Variant name -> size hyperparameters (the catalogue's table for ParagonSR).
VARIANTS = PARAGONSR.variants

__all__ = ["VARIANTS", "ParagonConfig", "ParagonSR"]
