"""PyTorch architectures and their checkpoints.

Public API::

    model = vsparagon.models.create("tiny", scale=2)   # training form
    infer = vsparagon.models.fuse(model)               # permanent inference form
    vsparagon.models.save(infer, "tiny_x2.safetensors")
    again = vsparagon.models.load("tiny_x2.safetensors")

Names, variants and scales come from the torch-free :mod:`vsparagon.catalogue`.
Importing this package imports torch.
"""

from vsparagon.catalogue.table import SCALES, canonical_variant, check_scale, variant_names
from vsparagon.models.checkpoint import load, read_descriptor, save
from vsparagon.models.fusion import fuse, is_fused
from vsparagon.models.paragonsr import VARIANTS, ParagonConfig, ParagonSR
from vsparagon.models.registry import create, describe

__all__ = [
    "SCALES",
    "VARIANTS",
    "ParagonConfig",
    "ParagonSR",
    "canonical_variant",
    "check_scale",
    "create",
    "describe",
    "fuse",
    "is_fused",
    "load",
    "read_descriptor",
    "save",
    "variant_names",
]
