"""OpenVINO on the CPU, compiled for each static input shape (tiles and frames have fixed shapes)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from vsparagon.errors import MissingDependencyError
from vsparagon.runtime.backends.base import Backend, BackendError, Session, cpu_onnx_file
from vsparagon.runtime.source import ModelSource


class OpenVinoSession(Session):
    """Compiles the model once per input shape and reuses one infer request per shape."""

    def __init__(
        self, core: Any, model: Any, config: dict[str, str], *, scale: int, fp16_io: bool, streams: int
    ) -> None:
        super().__init__(scale=scale, input_dtype=np.float16 if fp16_io else np.float32, max_parallel=streams)
        self._core, self._model, self._config = core, model, config
        self._ov = import_openvino()
        self._compiled: dict[tuple[int, ...], Any] = {}
        self._idle: dict[tuple[int, ...], list[Any]] = {}  # free infer requests per shape (one per stream at most)
        self._lock = threading.Lock()

    def _take(self, shape: tuple[int, ...]) -> Any:
        with self._lock:
            if shape not in self._compiled:
                model = self._model.clone()
                model.reshape({model.inputs[0]: list(shape)})
                self._compiled[shape] = self._core.compile_model(model, "CPU", self._config)
                self._idle[shape] = []
            idle = self._idle[shape]
            return idle.pop() if idle else self._compiled[shape].create_infer_request()

    def _run(self, batch: np.ndarray) -> np.ndarray:
        shape = tuple(batch.shape)
        request = self._take(shape)
        try:
            # set the tensor directly: the Python input dispatcher deadlocks when two VapourSynth
            # threads feed two requests of one compiled model at once
            request.set_input_tensor(self._ov.Tensor(batch, shared_memory=True))
            request.infer(share_outputs=True)
            return np.array(request.get_output_tensor(0).data, dtype=np.float32)
        finally:
            with self._lock:
                self._idle[shape].append(request)


CLASH_HINT = (
    "another OpenVINO build is already loaded in this process (vs-mlrt's vapoursynth-mlrt-ov plugin bundles "
    "its own); import vsparagon before the first use of vapoursynth.core (e.g. `import vsparagon.plugin` at the "
    "top of the script), or use backend='ort-cpu'"
)


def import_openvino() -> Any:
    """Import the ``openvino`` Python package, with an actionable error when it cannot be used."""
    try:
        import openvino as ov
    except ImportError as exc:
        if "mismatch" in str(exc):
            raise BackendError(f"backend='openvino' is unusable: {CLASH_HINT}") from None
        raise MissingDependencyError("backend='openvino' needs OpenVINO: pip install openvino") from None
    return ov


def openvino_usable() -> bool:
    """True when :func:`import_openvino` succeeds in this process."""
    try:
        import_openvino()
    except (BackendError, MissingDependencyError):
        return False
    return True


@dataclass(frozen=True, kw_only=True)
class OpenVino(Backend):
    """Intel OpenVINO runtime on the CPU; ``fp16`` sets its inference precision hint."""

    name = "openvino"

    def open(self, source: ModelSource) -> Session:
        ov = import_openvino()
        path, fp16_io = cpu_onnx_file(source, fp16=False)
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as exc:
            raise BackendError(f"OpenVINO could not read {path.name}: {ov_reason(exc)}") from None
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
        return OpenVinoSession(core, model, config, scale=source.descriptor.scale, fp16_io=fp16_io, streams=streams)

    @classmethod
    def unavailable(cls) -> str | None:
        """The import error of :func:`import_openvino`, if any."""
        try:
            import_openvino()
        except (BackendError, MissingDependencyError) as exc:
            return str(exc)
        return None


def ov_reason(exc: BaseException) -> str:
    """The human part of an OpenVINO error: its C++ source locations and check headers dropped, one line."""
    lines = [line.strip() for line in str(exc).splitlines()]
    kept = [line for line in lines if line and not line.startswith(("Exception from ", "Check '"))]
    text = " ".join(kept or lines[:1]) or type(exc).__name__
    return text if len(text) <= 300 else text[:150] + " ... " + text[-150:]
