"""What every backend is: a frozen config that opens a :class:`Session` for a model."""

from __future__ import annotations

import os
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from vsparagon.errors import MissingDependencyError, ParagonError
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
        self._gate = threading.BoundedSemaphore(max_parallel)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, h, w) -> (N, 3, h*scale, w*scale) float32; the GIL is released while it computes."""
        with self._gate:
            return self._run(np.ascontiguousarray(batch, dtype=self.input_dtype))

    @abstractmethod
    def _run(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True, kw_only=True)
class Backend(ABC):
    """A backend's settings. Its ``repr`` is part of the session cache identity."""

    name: ClassVar[str]
    """The ``backend=`` string that selects it."""

    fp16: bool = False
    """Run in half precision."""
    threads: int = 0
    """CPU threads for inference (0 = the runtime's default, all cores)."""
    streams: int = 1
    """Inferences that may run at once, each on ``threads / streams`` threads (CPU backends; others run one)."""
    device: int = 0
    """GPU index (GPU backends only)."""

    @abstractmethod
    def open(self, source: ModelSource) -> Session:
        """Load ``source`` and return a ready session."""

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this backend cannot run in this process (for ``paragon info``), or None when it can."""
        return None

    def cache_key(self, source: ModelSource) -> str:
        """Identity of the session this config builds for ``source``."""
        from vsparagon.runtime.graph_rewrite import rewrite_enabled

        return f"{self!r}|rewrite={rewrite_enabled()}|{source.path.resolve()}|{source.identity}"


def onnx_file(source: ModelSource, *, fp16: bool) -> tuple[Path, bool]:
    """An ONNX file for ``source``, converting a checkpoint (needs torch) into a cached export.

    Returns:
        The path and whether that graph takes float16 input.
    """
    if source.kind == "onnx":
        if fp16 and source.precision == "fp32":
            return _cached(source, "fp16", lambda dst: _convert_fp16(source.path, dst)), True
        return source.path, source.precision == "fp16"
    precision = "fp16" if fp16 else "fp32"
    return _cached(source, precision, lambda dst: _export_checkpoint(source.path, dst, fp16=fp16)), fp16


def stream_threads(threads: int, streams: int) -> int:
    """Threads for each of ``streams`` concurrent inferences sharing ``threads`` (0 = all cores)."""
    if streams <= 1:
        return threads
    return max(1, (threads or os.cpu_count() or 1) // streams)


def cpu_onnx_file(source: ModelSource, *, fp16: bool) -> tuple[Path, bool]:
    """:func:`onnx_file`, then the graph rewritten for CPU runtimes (:mod:`vsparagon.runtime.graph_rewrite`).

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
    tag = f"{'fp16' if fp16_io else 'fp32'}-cpu{graph_rewrite.REWRITE_VERSION}"
    target = cache_dir() / "onnx" / f"{source.path.stem}-{source.identity}-{tag}.onnx"
    if target.exists():
        return target, fp16_io
    try:
        rewritten, report = graph_rewrite.rewrite_for_cpu(onnx.load(str(path)))
    except Exception as exc:  # a graph the rewrite cannot read is still a graph the runtime may run
        print(f"vsparagon: running {path.name} as given (graph rewrite failed: {exc})", file=sys.stderr)
        return path, fp16_io
    if not report.changed:
        return path, fp16_io
    try:
        from vsparagon._files import atomic_write

        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, lambda tmp: onnx.save_model(rewritten, str(tmp)))
    except OSError as exc:
        print(f"vsparagon: running {path.name} as given (cannot cache its CPU graph: {exc})", file=sys.stderr)
        return path, fp16_io
    return target, fp16_io


def cache_dir() -> Path:
    """Where converted models are kept (``$VSPARAGON_CACHE`` or ``~/.cache/vsparagon``)."""
    base = os.environ.get("VSPARAGON_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vsparagon"
    )
    return Path(base)


def _cached(source: ModelSource, precision: str, build: Callable[[Path], None]) -> Path:
    folder = cache_dir() / "onnx"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{source.path.stem}-{source.identity}-{precision}.onnx"
    if not target.exists():
        build(target)
    return target


def _export_checkpoint(path: Path, target: Path, *, fp16: bool) -> None:
    try:
        from vsparagon import models
        from vsparagon.export import export_onnx
    except ImportError as exc:
        raise MissingDependencyError(
            f"running the checkpoint {path.name} on an ONNX backend needs PyTorch to export it "
            f"({exc.name} is missing): pip install 'vsparagon[export]', or run "
            f"`paragon export {path.name} -o model.onnx` elsewhere and pass model='model.onnx'"
        ) from None
    export_onnx(models.load(path, fused=True), target, fp16=fp16)


def _convert_fp16(path: Path, target: Path) -> None:
    try:
        import onnx

        from vsparagon.onnx_fp16 import to_float16
    except ImportError:
        raise MissingDependencyError(
            f"fp16 from the float32 graph {path.name} needs the onnx package: pip install onnx, "
            "or export an fp16 graph with `paragon export --fp16`"
        ) from None
    from vsparagon._files import atomic_write

    proto = to_float16(onnx.load(str(path)))
    atomic_write(target, lambda tmp: onnx.save_model(proto, str(tmp)))
