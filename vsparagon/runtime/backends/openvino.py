"""OpenVINO on the CPU, compiled for each static input shape (tiles and frames have fixed shapes)."""

from __future__ import annotations

import ctypes
import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vsparagon.catalogue import ModelDescriptor
from vsparagon.errors import MissingDependencyError
from vsparagon.runtime import hugepages
from vsparagon.runtime.backends.base import Backend, BackendError, Session, cpu_onnx_file
from vsparagon.runtime.precision import cpu_name, native_reduced, reduced_by_default
from vsparagon.runtime.source import ModelSource


class OpenVinoRuntime(Protocol):
    """The three things a session asks of OpenVINO, through its Python bindings or its C API (:mod:`.openvino_c`)."""

    def compile(self, shape: tuple[int, ...]) -> Any:
        """The model compiled for the CPU at the static input ``shape``."""

    def request(self, compiled: Any) -> Any:
        """A new infer request of ``compiled``."""

    def infer(self, request: Any, batch: np.ndarray) -> np.ndarray:
        """Run ``request`` on ``batch``: the first output, float32. Releases the GIL while it computes."""

    def precision(self, compiled: Any) -> str:
        """What ``compiled`` computes in, as OpenVINO decided: ``fp32``, ``bf16`` or ``fp16``."""


class OpenVinoSession(Session):
    """Compiles the model once per input shape and reuses one infer request per shape.

    The memory each shape's compile and requests allocate is advised as huge pages before it is first
    written (:mod:`vsparagon.runtime.hugepages`).
    """

    def __init__(self, runtime: OpenVinoRuntime, *, scale: int, fp16_io: bool, streams: int) -> None:
        super().__init__(scale=scale, input_dtype=np.float16 if fp16_io else np.float32, max_parallel=streams)
        self._runtime = runtime
        self._compiled: dict[tuple[int, ...], Any] = {}
        self._idle: dict[tuple[int, ...], list[Any]] = {}  # free infer requests per shape (one per stream at most)
        self._lock = threading.Lock()
        self._huge: dict[tuple[int, ...], hugepages.Tracker] = {}  # per shape: memory since its compile
        # measured: two 1920x1080 frames of tiny x2 at once peaked at 5,646 MiB (about 9.4 values per pixel
        # and channel, input and output included); 12 keeps a margin
        self.work_per_channel = 12

    def _take(self, shape: tuple[int, ...]) -> Any:
        """An idle infer request for ``shape``, compiling the shape or making the request if need be."""
        with self._lock:
            if shape not in self._compiled:
                self._huge[shape] = hugepages.Tracker()
                self._compiled[shape] = self._runtime.compile(shape)
                self._huge[shape].advise()
                self._idle[shape] = []
                self.precision = self._runtime.precision(self._compiled[shape])
            idle = self._idle[shape]
            if idle:
                return idle.pop()
            request = self._runtime.request(self._compiled[shape])
            self._huge[shape].advise()
            return request

    def _run(self, batch: np.ndarray) -> np.ndarray:
        shape = tuple(batch.shape)
        request = self._take(shape)
        try:
            return self._runtime.infer(request, batch)
        finally:
            with self._lock:
                self._idle[shape].append(request)

    @property
    def huge_page_bytes(self) -> int:
        """Bytes of this session's memory advised as huge pages so far."""
        return sum(t.advised for t in self._huge.values())


class PythonRuntime:
    """OpenVINO through its Python bindings (the ``openvino`` package)."""

    def __init__(self, ov: Any, path: Path, config: dict[str, str]) -> None:
        self._ov, self._config = ov, config
        self._core = shared_core(ov)
        try:
            self._model = self._core.read_model(str(path))
        except Exception as exc:
            raise BackendError(f"OpenVINO could not read {path.name}: {ov_reason(exc)}") from None

    def compile(self, shape: tuple[int, ...]) -> Any:
        model = self._model.clone()
        model.reshape({model.inputs[0]: list(shape)})
        return self._core.compile_model(model, "CPU", self._config)

    def request(self, compiled: Any) -> Any:
        return compiled.create_infer_request()

    def precision(self, compiled: Any) -> str:
        return precision_name(str(compiled.get_property("INFERENCE_PRECISION_HINT")))

    def infer(self, request: Any, batch: np.ndarray) -> np.ndarray:
        # set the tensor directly: the Python input dispatcher deadlocks when two VapourSynth
        # threads feed two requests of one compiled model at once
        request.set_input_tensor(self._ov.Tensor(batch, shared_memory=True))
        request.infer(share_outputs=True)
        return np.array(request.get_output_tensor(0).data, dtype=np.float32)


@functools.cache
def shared_core(ov: Any) -> Any:
    """The process's one ``openvino.Core``, never destroyed.

    OpenVINO's CPU plugin (one per core) installs its own signal stack on the thread that
    first compiles and, when destroyed, reinstates the one it found there, even when that
    belonged to a plugin already destroyed. Two cores destroyed out of order leave a thread
    on freed memory, and the next signal with a handler (SIGCHLD, SIGINT) kills the
    process. One core for the whole process, its reference deliberately held past exit,
    never restores anything.
    """
    core = ov.Core()
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(core))  # not even interpreter shutdown destroys it
    return core


def precision_name(ov_type: str) -> str:
    """OpenVINO's name of an element type (``bf16``, ``f16``, ``f32``, ``<Type: 'float32'>``) as ours."""
    text = ov_type.lower()
    for ours, names in (("bf16", ("bf16", "bfloat16")), ("fp16", ("f16", "float16")), ("fp32", ("f32", "float32"))):
        if any(name in text for name in names):
            return ours
    return text


CLASH_HINT = (
    "use backend='ort-cpu' (in a Python program, `import vsparagon.plugin` before the first use of "
    "vapoursynth.core also avoids the clash; vspipe loads every plugin before the script's first line)"
)
"""The fix when no OpenVINO can run beside another build (see :func:`.openvino_c.loaded_c_api`)."""


class OpenVinoClash(BackendError):
    """The ``openvino`` Python module refused to load: another build of its release is already in the process."""


def import_openvino() -> Any:
    """Import the ``openvino`` Python package, with an actionable error when it cannot be used.

    Raises:
        OpenVinoClash: another OpenVINO build of the same release is already in the process.
        MissingDependencyError: the package is not installed.
    """
    ov = _imported()
    if isinstance(ov, str):
        if "mismatch" in ov:
            raise OpenVinoClash(
                "the openvino Python module refuses to run on the other OpenVINO build already loaded in this "
                f"process ({ov_reason(ov)})"
            )
        raise MissingDependencyError("backend='openvino' needs OpenVINO: pip install openvino")
    return ov


@functools.cache
def _imported() -> Any:
    """The ``openvino`` module, or why it did not import. Tried once: a refusal lasts as long as the process
    (the other build stays loaded), and retrying it on every ``auto`` costs a failing import each time."""
    try:
        import openvino as ov
    except ImportError as exc:
        return str(exc) or type(exc).__name__
    return ov


@dataclass(frozen=True, kw_only=True)
class OpenVino(Backend):
    """Intel OpenVINO runtime on the CPU; ``fp16`` sets its inference precision hint.

    Beside another OpenVINO build (vs-mlrt's plugin loaded first), it runs on that build
    through OpenVINO's C API: see :mod:`vsparagon.runtime.backends.openvino_c`.
    """

    name = "openvino"

    def open(self, source: ModelSource) -> Session:
        path, fp16_io = cpu_onnx_file(source, fp16=False, runtime="openvino")
        streams = max(1, self.streams)
        config = {
            # one stream on every thread, or ``streams`` streams sharing them (one infer request each)
            "PERFORMANCE_HINT": "LATENCY" if streams == 1 else "THROUGHPUT",
            "INFERENCE_PRECISION_HINT": "f16" if self.fp16 else "f32",
        }
        if streams > 1:
            config["NUM_STREAMS"] = str(streams)
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = str(self.threads)
        return OpenVinoSession(
            open_runtime(path, config), scale=source.descriptor.scale, fp16_io=fp16_io, streams=streams
        )

    @classmethod
    def default_fp16(cls, descriptor: ModelDescriptor, *, bits: int | None) -> bool:
        """Reduced precision by the measured rule of :func:`~vsparagon.runtime.precision.reduced_by_default`."""
        return reduced_by_default(descriptor, bits=bits)

    @classmethod
    def half_refusal(cls) -> str | None:
        if native_reduced() is None:
            return (
                f"this CPU ({cpu_name()}) has no native bf16 or fp16 (AVX-512 BF16/FP16, AMX), so OpenVINO would "
                "run fp32 anyway; leave fp16 unset or use fp16=False"
            )
        return None

    @classmethod
    def unavailable(cls) -> str | None:
        """Why neither the Python bindings nor the C API of an OpenVINO in this process can run, if so."""
        from vsparagon.runtime.backends import openvino_c

        try:
            import_openvino()
        except OpenVinoClash:
            try:
                openvino_c.loaded_c_api()
            except BackendError as exc:
                return str(exc)
        except MissingDependencyError as exc:
            return str(exc)
        return None


def open_runtime(path: Path, config: dict[str, str]) -> OpenVinoRuntime:
    """``path`` read by the ``openvino`` Python package, or by the C API of another build it cannot run beside."""
    from vsparagon.runtime.backends import openvino_c

    try:
        ov = import_openvino()
    except OpenVinoClash:
        return openvino_c.CRuntime(openvino_c.loaded_c_api(), path, config)
    return PythonRuntime(ov, path, config)


def ov_reason(exc: BaseException | str) -> str:
    """The human part of an OpenVINO error or its text: C++ source locations and check headers dropped, one line."""
    lines = [line.strip() for line in str(exc).splitlines()]
    kept = [line for line in lines if line and not line.startswith(("Exception from ", "Check '"))]
    text = " ".join(kept or lines[:1]) or type(exc).__name__
    return text if len(text) <= 300 else text[:150] + " ... " + text[-150:]
