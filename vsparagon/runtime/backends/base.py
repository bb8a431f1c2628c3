"""What every backend is: a frozen config that opens a :class:`Session` for a model."""

from __future__ import annotations

import os
import sys
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from vsparagon._files import atomic_write, cached_conversion, cached_name, is_cached, model_cache
from vsparagon.catalogue.descriptor import ModelDescriptor
from vsparagon.errors import MissingDependencyError, ParagonError
from vsparagon.runtime.policy import WORK_PER_CHANNEL, TilePlan
from vsparagon.runtime.source import ModelSource


class BackendError(ParagonError):
    """A backend is unavailable or failed to load or run a model."""


class Session(ABC):
    """A loaded model, ready to run batches. ``run`` may be called from many threads."""

    def __init__(self, *, scale: int, input_dtype: type[np.floating], max_parallel: int) -> None:
        self.scale = scale
        """Output size / input size."""
        self.input_dtype = np.dtype(input_dtype)
        """dtype ``run`` expects (float32 or float16)."""
        self.max_parallel = max_parallel
        """Calls of ``run`` that may compute at once (more wait their turn)."""
        self.channels = 3
        """Planes the model takes (set from the descriptor by ``open_session``); 1 for a grey model."""
        self.work_per_channel: float = WORK_PER_CHANNEL
        """Working values the runtime holds per input pixel and feature channel, at its peak (tile planning).
        The default covers ONNX Runtime on the graph as given; a runtime that measured less says so."""
        self.precision = "fp16" if self.input_dtype == np.float16 else "fp32"
        """What the model computes in: ``fp32``, ``fp16`` or ``bf16`` (a runtime that picks its own sets it
        once it has compiled; the frame property ``ParagonPrecision``)."""
        self.budget_bytes: int | None = None
        """Memory all its frames in flight may use together when ``tile=0`` picks the tile size; None: the
        host's (:func:`vsparagon.runtime.policy.process_budget`). A GPU session sets its device's."""
        self._gate = threading.BoundedSemaphore(max_parallel)

    def run_frame_into(self, image: np.ndarray, plan: TilePlan, planes: list[np.ndarray]) -> None:
        """Upscale one frame ``(C, H, W)`` as ``plan`` cuts it, into ``planes`` (writable ``(H*scale, W*scale)``).

        ``image`` is float32, or float16 from a half-float clip; ``planes`` are float32 or float16 (the
        precision the frame travels in). Here: on the host, each tile through :meth:`run`. A GPU session
        overrides it to upload the frame once, tile and join on the device and download once.
        """
        if all(plane.dtype == np.float32 for plane in planes):
            plan.run_into(image, self.run, planes, scale=self.scale)
            return
        out = plan.run(image, self.run, scale=self.scale)
        for plane, values in zip(planes, out, strict=True):
            np.copyto(plane, values, casting="same_kind")

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, h, w) -> (N, C, h*scale, w*scale) float32; the GIL is released while it computes.

        C is the model's :attr:`channels`; a grey model given several planes runs each on its own.
        """
        n, planes = batch.shape[:2]
        if self.channels == 1 and planes > 1:
            out = self.run(batch.reshape(n * planes, 1, *batch.shape[2:]))
            return out.reshape(n, planes, *out.shape[2:])
        with self._gate:
            return self._run(np.ascontiguousarray(batch, dtype=self.input_dtype))

    @abstractmethod
    def _run(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True, kw_only=True)
class Backend(ABC):
    """A backend's settings. Its ``repr`` is part of the session cache identity."""

    name: ClassVar[str]
    """The ``backend=`` string that selects it."""
    runs_checkpoints: ClassVar[bool] = False
    """Whether it loads ``.safetensors`` checkpoints itself (others need the ONNX export)."""

    fp16: bool = False
    """Run in half precision (``fp16=None`` in the plugin means :meth:`default_fp16`)."""
    threads: int = 0
    """CPU threads for inference (0 = the runtime's default, all cores)."""
    streams: int = 1
    """Inferences that may run at once: on a CPU backend each on ``threads / streams`` threads; on a GPU backend
    each with its own CUDA stream, context and buffers (plugin option ``num_streams``)."""
    device: int = 0
    """GPU index (GPU backends only)."""

    @abstractmethod
    def open(self, source: ModelSource) -> Session:
        """Load ``source`` and return a ready session."""

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this backend cannot run in this process (for ``paragon info``), or None when it can."""
        return None

    @classmethod
    def default_fp16(cls, descriptor: ModelDescriptor, *, bits: int | None) -> bool:
        """What ``fp16=None`` means for ``descriptor`` and a clip of integer depth ``bits`` (None: float).

        Full precision unless a backend says otherwise.
        """
        return False

    @classmethod
    def half_refusal(cls) -> str | None:
        """Why this backend cannot run ``fp16=True`` on this machine (the fix included), or None when it can."""
        return None

    def on_gpu(self) -> bool:
        """Whether this config runs on a GPU here: the plugin then keeps ``DEFAULT_GPU_STREAMS`` frames in flight
        (each its own instance) unless ``num_streams`` says otherwise. GPU backends override it."""
        return False

    def cache_key(self, source: ModelSource) -> str:
        """Identity of the session this config builds for ``source``."""
        from vsparagon.runtime.graph_rewrite import rewrite_enabled

        return f"{self!r}|rewrite={rewrite_enabled()}|{source.path.resolve()}|{source.identity}"


def onnx_file(source: ModelSource, *, fp16: bool) -> tuple[Path, bool]:
    """The ONNX file to load for ``source``: the file itself, or its float16 conversion (cached).

    A checkpoint must be exported first: that step needs PyTorch, which the runtime never
    imports; the caller asks for it (``vsparagon.export.cache``) and passes the ONNX file.

    Returns:
        The path and whether that graph takes float16 input.
    """
    if source.kind != "onnx":
        raise BackendError(
            f"{source.path.name} is a checkpoint; ONNX backends load ONNX files: export it with "
            f"`paragon export {source.path.name} -o model.onnx` and pass model='model.onnx', or use backend='torch'"
        )
    if fp16 and source.precision == "fp32":
        return cached_conversion(
            source.path, source.identity, "fp16", lambda dst: _convert_fp16(source.path, dst)
        ), True
    return source.path, source.precision == "fp16"


def stream_threads(threads: int, streams: int) -> int:
    """Threads for each of ``streams`` concurrent inferences sharing ``threads`` (0 = all cores)."""
    if streams <= 1:
        return threads
    return max(1, (threads or os.cpu_count() or 1) // streams)


def cpu_onnx_file(source: ModelSource, *, fp16: bool, runtime: str = "onnxruntime") -> tuple[Path, bool]:
    """:func:`onnx_file`, then the graph rewritten for the CPU ``runtime`` (:mod:`vsparagon.runtime.graph_rewrite`).

    The rewritten graph computes the same values; it is cached beside the other
    conversions. A graph no rewrite applies to, ``VSPARAGON_GRAPH_REWRITE=0``, a
    missing ``onnx`` package or an unwritable cache: the graph as given.
    """
    from vsparagon.runtime import graph_rewrite

    path, fp16_io = onnx_file(source, fp16=fp16)
    if not graph_rewrite.rewrite_enabled():
        return path, fp16_io
    try:
        import onnx
    except ImportError:
        return path, fp16_io
    # a conversion already in the cache carries its precision in its name
    tag = f"{'ov' if runtime == 'openvino' else 'cpu'}{graph_rewrite.REWRITE_VERSION}"
    tag = tag if is_cached(path) else f"{'fp16' if fp16_io else 'fp32'}-{tag}"
    target = model_cache() / cached_name(path, source.identity, tag)
    if target.exists():
        return target, fp16_io
    try:
        rewritten, report = graph_rewrite.rewrite_for_cpu(onnx.load(str(path)), runtime)
    except Exception as exc:  # a graph the rewrite cannot read is still a graph the runtime may run
        print(f"vsparagon: running {path.name} as given (graph rewrite failed: {exc})", file=sys.stderr)
        return path, fp16_io
    if not report.changed:
        return path, fp16_io
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, lambda tmp: onnx.save_model(rewritten, str(tmp)))
    except OSError as exc:
        print(f"vsparagon: running {path.name} as given (cannot cache its CPU graph: {exc})", file=sys.stderr)
        return path, fp16_io
    return target, fp16_io


def _convert_fp16(path: Path, target: Path) -> None:
    try:
        import onnx

        from vsparagon.onnx_fp16 import to_float16
    except ImportError:
        raise MissingDependencyError(
            f"fp16 from the float32 graph {path.name} needs the onnx package: pip install onnx, "
            "or export an fp16 graph with `paragon export --fp16`"
        ) from None
    proto = to_float16(onnx.load(str(path)))
    atomic_write(target, lambda tmp: onnx.save_model(proto, str(tmp)))
