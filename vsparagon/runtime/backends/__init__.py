"""Inference backends, one module each. Heavy runtimes are imported only when a backend opens.

Adding a backend is adding a module and a line in :data:`BACKENDS`.
"""

from __future__ import annotations

from vsparagon.errors import ConfigError
from vsparagon.runtime.backends.base import Backend, BackendError, Session
from vsparagon.runtime.backends.openvino import OpenVino
from vsparagon.runtime.backends.ort_cpu import OrtCpu
from vsparagon.runtime.backends.ort_gpu import OrtCuda, OrtTensorRT
from vsparagon.runtime.backends.torch_backend import TorchBackend
from vsparagon.runtime.backends.trt import TensorRT

#: ``backend=`` name -> config class.
BACKENDS: dict[str, type[Backend]] = {
    cls.name: cls for cls in (OrtCpu, OpenVino, TorchBackend, OrtCuda, OrtTensorRT, TensorRT)
}
#: What ``backend="auto"`` tries, in order, fastest first: the GPU runtimes, PyTorch on CUDA, then the CPU ones.
AUTO_ORDER = ("trt", "ort-trt", "ort-cuda", "torch", "openvino", "ort-cpu")


def backend_names() -> list[str]:
    """Every accepted ``backend=`` value, ``auto`` first."""
    return ["auto", *BACKENDS]


def make_backend(name: str, *, fp16: bool = False, threads: int = 0, device: int = 0, streams: int = 1) -> Backend:
    """Build the config for ``name`` (not ``auto``: see :func:`vsparagon.runtime.sessions.open_session`)."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; valid backends: {', '.join(backend_names())}")
    return BACKENDS[name](fp16=fp16, threads=threads, device=device, streams=streams)


__all__ = ["AUTO_ORDER", "BACKENDS", "Backend", "BackendError", "Session", "backend_names", "make_backend"]
