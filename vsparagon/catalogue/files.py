"""Read what a model file is without torch: the descriptor of ``.safetensors`` and ``.onnx`` files.

A safetensors file starts with an 8-byte little-endian header length and a JSON
header whose ``__metadata__`` holds our descriptor; an ONNX file keeps it in the
graph's ``metadata_props``. Neither needs a deep-learning framework to read.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vsparagon.catalogue.descriptor import METADATA_KEY, ModelDescriptor
from vsparagon.errors import CheckpointError

#: Metadata key of the precision (``fp32``/``fp16``) in ONNX files written by ``paragon export``.
PRECISION_KEY = "vsparagon_precision"
#: Suffixes of pickled PyTorch checkpoints (never vsparagon's own; read by spandrel, weights only).
PICKLE_SUFFIXES = (".pth", ".ckpt")
#: Largest safetensors header read (the format's own limit is 100 MB).
MAX_HEADER_BYTES = 100 * 1024 * 1024

Precision = Literal["fp32", "fp16"]


@dataclass(frozen=True, kw_only=True)
class OnnxInfo:
    """What an ONNX file says about itself."""

    descriptor: ModelDescriptor | None
    """Our descriptor, or None for a foreign graph."""
    precision: Precision
    """Element type of the graph's input."""
    inputs: int
    """Graph inputs (weights excluded)."""
    outputs: int
    """Graph outputs."""
    input_shape: tuple[int | str | None, ...]
    """The first input's shape: ints, symbolic names or None."""


def safetensors_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file (empty when it has none).

    Raises:
        CheckpointError: a missing file, a folder, or a file that is not safetensors.
    """
    source = Path(path)
    if not source.exists():
        raise CheckpointError(f"{source}: no such checkpoint file")
    if not source.is_file():
        raise CheckpointError(f"{source}: is not a file")
    size = source.stat().st_size
    try:
        with source.open("rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise ValueError("the file is shorter than a safetensors header")
            (length,) = struct.unpack("<Q", head)
            if length > min(size - 8, MAX_HEADER_BYTES):
                raise ValueError(f"header length {length} does not fit a {size}-byte file")
            header = json.loads(handle.read(length).decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        metadata = header.get("__metadata__") or {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise ValueError("__metadata__ is not a string map")
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{source}: not a readable safetensors checkpoint ({first}); "
            "the file is corrupted, truncated or of another format"
        ) from None
    return metadata


def read_safetensors_descriptor(path: str | os.PathLike[str]) -> ModelDescriptor:
    """The descriptor of a checkpoint written by ``vsparagon.models.save`` (the weights are not read)."""
    metadata = safetensors_metadata(path)
    if METADATA_KEY not in metadata:
        raise CheckpointError(
            f"{Path(path)}: a safetensors file without vsparagon metadata; it was not written by "
            "vsparagon.models.save (another project's checkpoint runs through spandrel: pip install 'vsparagon[zoo]')"
        )
    return ModelDescriptor.from_json(metadata[METADATA_KEY], source=str(path))


def is_foreign_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is another project's checkpoint: a ``.pth``/``.ckpt`` file, or a ``.safetensors``
    file without vsparagon metadata (OpenModelDB, chaiNNer, traiNNer-redux, neosr). Only the header is read.

    Raises:
        CheckpointError: a missing file, or a ``.safetensors`` file whose header is unreadable.
    """
    source = Path(path)
    suffix = source.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        return True
    return suffix == ".safetensors" and METADATA_KEY not in safetensors_metadata(source)


def read_onnx(path: str | os.PathLike[str]) -> OnnxInfo:
    """Descriptor (if ours), precision and I/O of an ONNX file, from its protobuf (no runtime session).

    Raises:
        CheckpointError: a file that is not a readable ONNX model, or whose input is not float.
    """
    import onnx

    source = Path(path)
    try:
        proto = onnx.load_model(str(source), load_external_data=False)
    except Exception as exc:
        first = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise CheckpointError(f"model {str(source)!r} is not a loadable ONNX file ({first})") from None
    graph = proto.graph
    weights = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in weights]
    if not inputs or not graph.output:
        raise CheckpointError(f"model {str(source)!r} is not a loadable ONNX file (it has no graph inputs/outputs)")
    elem = inputs[0].type.tensor_type.elem_type
    if elem not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
        name = onnx.TensorProto.DataType.Name(elem) if elem else "not a tensor"
        raise CheckpointError(f"model {str(source)!r}: input type {name} is not float32 or float16")
    precision: Precision = "fp16" if elem == onnx.TensorProto.FLOAT16 else "fp32"
    dims = tuple(
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in inputs[0].type.tensor_type.shape.dim
    )
    props = {p.key: p.value for p in proto.metadata_props}
    descriptor = ModelDescriptor.from_json(props[METADATA_KEY], source=str(source)) if METADATA_KEY in props else None
    if props.get(PRECISION_KEY, precision) != precision:
        raise CheckpointError(
            f"{source}: its metadata says precision {props[PRECISION_KEY]!r}, but the graph takes {precision}; "
            "the file was edited by another tool (re-export it with paragon export)"
        )
    return OnnxInfo(
        descriptor=descriptor, precision=precision, inputs=len(inputs), outputs=len(graph.output), input_shape=dims
    )


__all__ = [
    "PICKLE_SUFFIXES",
    "PRECISION_KEY",
    "OnnxInfo",
    "Precision",
    "is_foreign_checkpoint",
    "read_onnx",
    "read_safetensors_descriptor",
    "safetensors_metadata",
]
