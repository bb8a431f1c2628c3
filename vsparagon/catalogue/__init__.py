"""The model catalogue: what models exist and how they are described. No torch, no runtime.

Reading an ONNX file's metadata uses the ``onnx`` package (a base dependency); the rest is
plain Python.

* :mod:`~vsparagon.catalogue.table`: architectures, variants and scales (the seed's table, as data).
* :mod:`~vsparagon.catalogue.descriptor`: the descriptor that travels with every model file.
* :mod:`~vsparagon.catalogue.shipped`: trained releases, their names, and "name or path -> file".
* :mod:`~vsparagon.catalogue.files`: reading a ``.safetensors`` or ``.onnx`` file's descriptor.

Every other layer may import this one; it imports none of them.
"""

from vsparagon.catalogue.descriptor import FORMAT_VERSION, METADATA_KEY, UNKNOWN_RADIUS, ModelDescriptor
from vsparagon.catalogue.files import OnnxInfo, is_foreign_checkpoint, read_onnx, read_safetensors_descriptor
from vsparagon.catalogue.shipped import ShippedName, is_model_path, locate, shipped_models, shipped_path
from vsparagon.catalogue.table import (
    ARCHITECTURES,
    CHANNELS,
    SCALES,
    Architecture,
    canonical_variant,
    check_scale,
    variant_names,
    variant_spec,
)

__all__ = [
    "ARCHITECTURES",
    "CHANNELS",
    "FORMAT_VERSION",
    "METADATA_KEY",
    "SCALES",
    "UNKNOWN_RADIUS",
    "Architecture",
    "ModelDescriptor",
    "OnnxInfo",
    "ShippedName",
    "canonical_variant",
    "check_scale",
    "is_foreign_checkpoint",
    "is_model_path",
    "locate",
    "read_onnx",
    "read_safetensors_descriptor",
    "shipped_models",
    "shipped_path",
    "variant_names",
    "variant_spec",
]
