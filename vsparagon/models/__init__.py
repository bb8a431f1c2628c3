"""PyTorch architectures and their checkpoints.

Public API::

    model = vsparagon.models.create("tiny", scale=2)   # training form
    infer = vsparagon.models.fuse(model)               # permanent inference form
    vsparagon.models.save(infer, "tiny_x2.safetensors")
    again = vsparagon.models.load("tiny_x2.safetensors")

Names, variants and scales come from the torch-free :mod:`vsparagon.catalogue`. Other projects'
checkpoints load through spandrel (:mod:`vsparagon.models.foreign`, the ``zoo`` extra).
Importing this package imports torch.
"""

from vsparagon.catalogue.table import SCALES, canonical_variant, check_scale, variant_names
from vsparagon.models.checkpoint import load, read_descriptor, save
from vsparagon.models.foreign import ForeignModel, load_foreign
from vsparagon.models.fusion import fuse, is_fused
from vsparagon.models.paragonsr import VARIANTS, ParagonConfig, ParagonSR
from vsparagon.models.registry import create, describe

__all__ = [
    "SCALES",
    "VARIANTS",
    "ForeignModel",
    "ParagonConfig",
    "ParagonSR",
    "canonical_variant",
    "check_scale",
    "create",
    "describe",
    "fuse",
    "is_fused",
    "load",
    "load_foreign",
    "read_descriptor",
    "save",
    "variant_names",
]
