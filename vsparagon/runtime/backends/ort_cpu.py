"""ONNX Runtime on the CPU."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import numpy as np

from vsparagon.runtime.backends.base import Backend, BackendError, Session, cpu_onnx_file, stream_threads
from vsparagon.runtime.source import ModelSource, ort_reason


class OrtSession(Session):
    """An ``onnxruntime.InferenceSession``; ``run`` releases the GIL inside ONNX Runtime."""

    def __init__(self, session: Any, *, scale: int, fp16: bool, max_parallel: int) -> None:
        super().__init__(scale=scale, input_dtype=np.float16 if fp16 else np.float32, max_parallel=max_parallel)
        self._session = session
        self._input = session.get_inputs()[0].name
        self._output = session.get_outputs()[0].name

    def _run(self, batch: np.ndarray) -> np.ndarray:
        (out,) = self._session.run([self._output], {self._input: batch})
        return out.astype(np.float32, copy=False)


@dataclass(frozen=True, kw_only=True)
class OrtCpu(Backend):
    """ONNX Runtime, CPUExecutionProvider, all graph optimizations; ``streams`` concurrent runs of one session."""

    name = "ort-cpu"

    def open(self, source: ModelSource) -> Session:
        import onnxruntime as ort

        path, fp16 = cpu_onnx_file(source, fp16=self.fp16)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Concurrent runs of one session each use their own calling thread plus intra-op helpers.
        options.intra_op_num_threads = stream_threads(self.threads, self.streams)
        options.inter_op_num_threads = 1
        options.log_severity_level = 4  # failures reach the caller as exceptions; no second copy on stderr
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise BackendError(f"ONNX Runtime could not load {path.name}: {ort_reason(exc)}") from None
        return OrtSession(session, scale=source.descriptor.scale, fp16=fp16, max_parallel=max(1, self.streams))

    @classmethod
    def unavailable(cls) -> str | None:
        """None when onnxruntime is installed."""
        if importlib.util.find_spec("onnxruntime") is None:
            return "backend='ort-cpu' needs ONNX Runtime: pip install onnxruntime"
        return None
