"""Where a model comes from: a shipped release, an ONNX file or a checkpoint.

A :class:`ModelSource` names one file and carries its descriptor, read from the
file's own metadata by the torch-free :mod:`vsparagon.catalogue`, so the runtime
never needs torch to learn a model's scale or receptive radius. A foreign ONNX
graph (no descriptor) is run once on a small probe to learn its scale.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vsparagon.catalogue import ARCHITECTURES, CHANNELS, UNKNOWN_RADIUS, ModelDescriptor, shipped_path
from vsparagon.catalogue.files import is_foreign_checkpoint, read_onnx, read_safetensors_descriptor
from vsparagon.errors import CheckpointError, ConfigError

Kind = Literal["onnx", "checkpoint"]
#: Describes another project's checkpoint (``vsparagon.export.cache.foreign_descriptor``: torch and spandrel),
#: for callers that take that step; the runtime itself cannot.
Describe = Callable[[Path], ModelDescriptor]


@dataclass(frozen=True, kw_only=True)
class ModelSource:
    """One model file and what it is."""

    path: Path
    """The ``.onnx`` file, or the checkpoint (``.safetensors``, or a foreign ``.pth``/``.ckpt``)."""
    kind: Kind
    """``"onnx"`` or ``"checkpoint"`` (ours or another project's)."""
    descriptor: ModelDescriptor
    """Scale, channels, receptive radius, ..."""
    precision: Literal["fp32", "fp16"] = "fp32"
    """Tensor type of an ONNX graph's input and output."""
    identity: str = ""
    """Content identity (size, mtime and a hash of the head of the file), for caches."""


def _identity(path: Path) -> str:
    stat = path.stat()
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        digest.update(handle.read(1 << 20))
    digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def resolve(
    *, variant: str | None, scale: int, model: str | os.PathLike[str] | None, describe: Describe | None = None
) -> ModelSource:
    """Find the model to run.

    Args:
        variant: a shipped release key (``tiny``, ``tiny_video``; ignored when ``model`` is given).
        scale: the upscaling factor the caller expects; a model of another scale is an error.
        model: a ``.onnx``, ``.safetensors``, ``.pth`` or ``.ckpt`` path used instead of a shipped release.
        describe: how to describe another project's checkpoint (see :data:`Describe`).

    Raises:
        ConfigError: unknown variant, scale not shipped, scale mismatch, channels neither RGB nor grey.
        CheckpointError: a missing or unreadable model file, or a foreign checkpoint without ``describe``.
    """
    path = Path(model) if model is not None else shipped_path(variant or "tiny", scale)
    source = open_model(path, describe=describe)
    if source.descriptor.scale != scale:
        raise ConfigError(
            f"model {source.path.name} upscales x{source.descriptor.scale}, but scale={scale} was asked; "
            f"pass scale={source.descriptor.scale} or a x{scale} model"
        )
    channels = (source.descriptor.in_channels, source.descriptor.out_channels)
    if channels not in CHANNELS:
        raise ConfigError(
            f"model {source.path.name} takes {channels[0]} channels and gives {channels[1]}; "
            "RGB (3 -> 3) and grey (1 -> 1) models are supported"
        )
    return source


_opened: dict[tuple[str, int, int], ModelSource] = {}
_opened_lock = threading.Lock()


def open_model(path: Path, *, describe: Describe | None = None) -> ModelSource:
    """Read the descriptor of an ONNX or checkpoint file, with clear errors.

    Remembered per (file, size, modification time): a script calling Upscale many
    times with one model reads (and, for ONNX, parses) the file once. Another project's
    checkpoint is described by ``describe``.
    """
    if not path.exists():
        raise CheckpointError(f"model file {str(path)!r} does not exist")
    if not path.is_file():
        raise CheckpointError(f"model path {str(path)!r} is not a file")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _opened_lock:
        known = _opened.get(key)
    if known is None:
        known = _read_model(path, describe)
        with _opened_lock:
            _opened[key] = known
    return known


def _read_model(path: Path, describe: Describe | None) -> ModelSource:
    suffix = path.suffix.lower()
    if suffix in (".safetensors", ".pth", ".ckpt") and is_foreign_checkpoint(path):
        if describe is None:
            raise CheckpointError(
                f"{path}: another project's checkpoint; core.paragon.Upscale and the paragon tools convert it "
                f"(pip install 'vsparagon[zoo]'), or run `paragon export {path.name} -o model.onnx` and use that"
            )
        return ModelSource(path=path, kind="checkpoint", descriptor=describe(path), identity=_identity(path))
    if suffix == ".onnx":
        descriptor, precision = _onnx_descriptor(path)
        return ModelSource(path=path, kind="onnx", descriptor=descriptor, precision=precision, identity=_identity(path))
    if suffix == ".safetensors":
        descriptor = read_safetensors_descriptor(path)
        if descriptor.arch not in ARCHITECTURES:
            raise CheckpointError(
                f"{path}: architecture {descriptor.arch!r} is not supported "
                f"(expected one of {', '.join(ARCHITECTURES)})"
            )
        return ModelSource(path=path, kind="checkpoint", descriptor=descriptor, identity=_identity(path))
    raise CheckpointError(
        f"model {str(path)!r}: unknown file type {suffix!r}; use a .onnx, .safetensors, .pth or .ckpt file"
    )


def ort_reason(exc: BaseException | str) -> str:
    """The human part of an ONNX Runtime error (or its text), without its source paths and C++ signatures."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = re.sub(r"/onnxruntime_src/\S+ \S+\([^)]*\)\s*", "", text)
    text = re.sub(r"\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    return text if len(text) <= 300 else text[:150] + " ... " + text[-150:]


def _onnx_descriptor(path: Path) -> tuple[ModelDescriptor, Literal["fp32", "fp16"]]:
    """Descriptor from vsparagon metadata, or probed from the graph for foreign ONNX files."""
    info = read_onnx(path)
    if info.inputs != 1 or info.outputs != 1:
        raise CheckpointError(f"model {str(path)!r} must have one input and one output (an image-to-image model)")
    if info.descriptor is not None:
        return info.descriptor, info.precision
    return _probe_foreign(path, info.precision, info.input_shape), info.precision


def _probe_foreign(path: Path, precision: str, shape: tuple[int | str | None, ...]) -> ModelDescriptor:
    """A foreign ONNX (e.g. another project's model): learn scale and channels by running it once."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise CheckpointError(f"model {str(path)!r} is not a loadable ONNX file ({ort_reason(exc)})") from None
    channels = shape[1] if len(shape) == 4 and isinstance(shape[1], int) else 3
    probe = np.zeros((1, channels, 16, 16), dtype=np.float16 if precision == "fp16" else np.float32)
    try:
        (out,) = session.run(None, {session.get_inputs()[0].name: probe})
    except Exception as exc:
        raise CheckpointError(
            f"model {str(path)!r} has no vsparagon metadata and failed on a 16x16 probe ({exc}); "
            "it needs a fixed input size, which is not supported"
        ) from None
    scale = out.shape[-1] // 16
    if out.ndim != 4 or out.shape[-1] != 16 * scale or out.shape[-2] != 16 * scale or scale < 1:
        raise CheckpointError(f"model {str(path)!r}: output shape {out.shape} is not an integer upscale of 16x16")
    return ModelDescriptor(
        arch="onnx",
        variant=path.stem,
        scale=int(scale),
        in_channels=int(channels),
        out_channels=int(out.shape[1]),
        receptive_radius=UNKNOWN_RADIUS,
        fused=True,
    )
