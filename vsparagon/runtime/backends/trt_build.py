"""Building a TensorRT engine from an ONNX graph, in-process, through TensorRT's Python API.

The network is strongly typed: an fp16 engine comes from an fp16-typed ONNX graph (the
fp16 builder flag is gone in TensorRT 11), so the same code builds on TensorRT 10.x and
11.x. Progress goes to stderr (never stdout: vspipe writes video there).

UNEXECUTED with a real TensorRT: no GPU was available while this was written. The tests
run this code against a fake ``tensorrt`` module (``tests/runtime/trt_fakes.py``).
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from vsparagon.runtime.backends.base import BackendError

Shape = tuple[int, ...]
#: Words in TensorRT's errors that mean the build ran out of memory (workspace or device).
_MEMORY_WORDS = (
    "could not find any implementation",
    "out of memory",
    "outofmemory",
    "insufficient memory",
    "cudaerrormemoryallocation",
)


@dataclass(frozen=True, kw_only=True)
class BuildSettings:
    """How one engine is built."""

    profile: tuple[Shape, Shape, Shape]
    """(min, opt, max) shapes of the input."""
    workspace_mib: int
    """Workspace limit in MiB; 0 leaves TensorRT's default (the device's memory)."""
    opt_level: int
    """Builder optimisation level, 0 to 5 (TensorRT's default is 3)."""
    what: str
    """The engine in words, for stderr and errors (``tiny_x2.onnx at 1x3x1080x1920, fp16``)."""


def make_logger(trt: Any) -> Any:
    """A ``tensorrt.ILogger`` that writes warnings and errors to stderr and keeps the errors (``.errors``)."""

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []
            self._lock = threading.Lock()

        def log(self, severity: Any, msg: str) -> None:
            level = int(severity)
            if level > int(trt.ILogger.Severity.WARNING):
                return
            with self._lock:
                if level <= int(trt.ILogger.Severity.ERROR):
                    self.errors.append(str(msg))
            print(f"vsparagon: TensorRT: {msg}", file=sys.stderr)

    return _Logger()


def _monitor(trt: Any, what: str) -> Any:
    """A ``tensorrt.IProgressMonitor`` that reports the build's top-level phases on stderr."""

    class _Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()  # TensorRT may call from several threads
            self._started: dict[str, float] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            if parent_phase:
                return
            with self._lock:
                self._started[phase_name] = time.monotonic()
            print(f"vsparagon: TensorRT {what}: {phase_name} ({num_steps} steps)", file=sys.stderr)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True  # never cancel

        def phase_finish(self, phase_name: str) -> None:
            with self._lock:
                started = self._started.pop(phase_name, None)
            if started is not None:
                seconds = time.monotonic() - started
                print(f"vsparagon: TensorRT {what}: {phase_name} done in {seconds:.1f} s", file=sys.stderr)

    return _Monitor()


def build_engine(
    trt: Any, onnx: bytes, settings: BuildSettings, *, timing: bytes, free_mib: int
) -> tuple[bytes, bytes]:
    """Build a serialized engine from ``onnx``.

    Args:
        trt: the ``tensorrt`` module.
        onnx: the graph's bytes (fp16-typed for an fp16 engine).
        settings: profile, workspace, optimisation level.
        timing: a serialized timing cache to start from (empty: a new one).
        free_mib: free device memory, named in an out-of-memory error.

    Returns:
        The serialized engine and the updated timing cache.

    Raises:
        BackendError: the graph does not parse, or the build fails (an out-of-memory failure names
            the workspace and the free GPU memory, and what to change).
    """
    log = make_logger(trt)
    builder = trt.Builder(log)
    # required for fp16-by-graph on 10.x; the default (the flag accepted and ignored) on 11.x
    typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    network = builder.create_network(0 if typed is None else 1 << int(typed))
    parser = trt.OnnxParser(network, log)
    if not parser.parse(onnx):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)] or log.errors
        raise BackendError(f"TensorRT could not parse {settings.what}: {'; '.join(errors)[:400] or 'no reason given'}")
    config = builder.create_builder_config()
    if settings.workspace_mib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mib << 20)
    config.builder_optimization_level = settings.opt_level
    cache = config.create_timing_cache(timing)
    config.set_timing_cache(cache, False)  # a cache of another version or GPU is refused, not half-used
    monitor = _monitor(trt, settings.what)  # must outlive the build
    config.progress_monitor = monitor
    profile = builder.create_optimization_profile()
    low, opt, high = settings.profile
    profile.set_shape(network.get_input(0).name, low, opt, high)
    config.add_optimization_profile(profile)
    print(f"vsparagon: building a TensorRT engine for {settings.what}, once (it is cached)", file=sys.stderr)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BackendError(_failure(log.errors, settings, free_mib))
    return bytes(memoryview(plan)), bytes(memoryview(cache.serialize()))


def _failure(errors: list[str], settings: BuildSettings, free_mib: int) -> str:
    reason = "; ".join(errors[-3:])[:400] or "no reason given"
    if any(word in reason.lower() for word in _MEMORY_WORDS):
        workspace = f"{settings.workspace_mib} MiB" if settings.workspace_mib else "TensorRT's default (no limit)"
        raise_it = ", or raise the workspace limit" if settings.workspace_mib else ""
        return (
            f"TensorRT ran out of memory building {settings.what} (workspace {workspace}, {free_mib} MiB of GPU "
            f"memory free): {reason}; use a smaller tile=, fewer num_streams, close other programs on the GPU"
            f"{raise_it}"
        )
    return f"TensorRT could not build {settings.what}: {reason}"
