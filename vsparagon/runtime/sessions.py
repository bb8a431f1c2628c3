"""One loaded session per (backend config, model file): shared by every call in a process."""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import sys
import threading

from vsparagon.errors import ConfigError
from vsparagon.runtime import gpu_info
from vsparagon.runtime.backends import AUTO_ORDER, BACKENDS, Backend, Session, backend_names, make_backend
from vsparagon.runtime.source import ModelSource

_sessions: dict[str, Session] = {}
_lock = threading.Lock()


def pick_auto(source: ModelSource | None = None) -> str:
    """The backend ``auto`` means for ``source``: the first usable of :data:`AUTO_ORDER`, else ``torch``.

    TensorRT, then ONNX Runtime's TensorRT and CUDA providers, then PyTorch on a CUDA GPU (where
    it can run ``source``: a checkpoint, or a release's ONNX with its checkpoint beside it; any
    model when None), then OpenVINO and ONNX Runtime on the CPU. A runtime the user installed
    that cannot run here (a GPU runtime without a GPU, an OpenVINO that clashes with another)
    is skipped with one line on stderr saying why.
    """
    return first_usable(torch_runs_it=source is None or _torch_runs(source))


def first_usable(*, torch_runs_it: bool) -> str:
    """The first usable of :data:`AUTO_ORDER`, PyTorch counted only where it can run the model."""
    return usable_in_order(torch_runs_it=torch_runs_it)[0]


def usable_in_order(*, torch_runs_it: bool) -> list[str]:
    """Every usable backend of :data:`AUTO_ORDER`, fastest first, ending with ``torch`` when none is.

    ``auto`` opens the first; when it fails to open (a GPU runtime whose CUDA libraries do not
    load, a model TensorRT cannot build), the plugin falls through to the next.
    """
    usable = []
    for name in AUTO_ORDER:
        if name == "torch":
            reason = BACKENDS[name].unavailable() or gpu_info.torch_cuda_problem()
            reason = reason if torch_runs_it else "it runs checkpoints, and this ONNX model has none beside it"
        else:
            reason = BACKENDS[name].unavailable()
        if reason is None:
            usable.append(name)
        elif _installed(name):  # installed, yet unusable: say why, once
            _say_once(f"vsparagon: backend='auto' skips {_LABELS.get(name, name)}: {reason}")
    return usable or ["torch"]


def auto_candidates(source: ModelSource) -> list[str]:
    """:func:`usable_in_order` for ``source``: what ``auto`` tries, in order."""
    return usable_in_order(torch_runs_it=_torch_runs(source))


def say_auto_skip(name: str, reason: str) -> None:
    """The one stderr line ``auto`` prints when ``name`` failed to open and the next backend is tried."""
    _say_once(f"vsparagon: backend='auto' skips {_LABELS.get(name, name)} (it failed to open): {reason}")


def _torch_runs(source: ModelSource) -> bool:
    """Whether the torch backend can load ``source`` (a checkpoint, or an ONNX release with its checkpoint)."""
    from vsparagon.runtime.backends.torch_backend import checkpoint_of

    try:
        checkpoint_of(source)
    except ConfigError:
        return False
    return True


_LABELS = {
    "trt": "TensorRT",
    "ort-trt": "ONNX Runtime TensorRT",
    "ort-cuda": "ONNX Runtime CUDA",
    "openvino": "OpenVINO",
}


def _installed(name: str) -> bool:
    """Whether the runtime behind ``name`` is installed by choice (its skip is worth a line on stderr).

    PyTorch is not: its CUDA build is the default download, present on many machines with no GPU.
    """
    if name in ("ort-trt", "ort-cuda"):
        return any(_has_distribution(d) for d in ("onnxruntime-gpu", "onnxruntime-gpu-cuda12"))
    module = {"trt": "tensorrt", "openvino": "openvino", "ort-cpu": "onnxruntime"}.get(name)
    return module is not None and importlib.util.find_spec(module) is not None


def _has_distribution(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@functools.cache
def _say_once(line: str) -> None:
    print(line, file=sys.stderr)


def open_session(backend: Backend, source: ModelSource) -> Session:
    """Return the shared session for this backend config and model, loading it on first use."""
    key = backend.cache_key(source)
    with _lock:
        session = _sessions.get(key)
        if session is None:
            session = backend.open(source)
            session.channels = source.descriptor.in_channels
            _sessions[key] = session
        return session


def resolve_backend(
    name: str,
    source: ModelSource,
    *,
    fp16: bool | None,
    threads: int,
    device: int,
    streams: int = 1,
    bits: int | None = None,
) -> Backend:
    """Turn a ``backend=`` string (``auto`` included) into a backend config.

    ``fp16=None`` is the backend's default precision for this model and a clip of integer depth
    ``bits`` (None: a float clip), :meth:`Backend.default_fp16`.

    Raises:
        ConfigError: an unknown backend, half precision asked of a model not marked fp16-safe, or of a
            backend that cannot run it here.
    """
    chosen = pick_auto(source) if name == "auto" else name
    if chosen not in BACKENDS:
        raise ConfigError(f"unknown backend {chosen!r}; valid backends: {', '.join(backend_names())}")
    if fp16 is None:
        fp16 = BACKENDS[chosen].default_fp16(source.descriptor, bits=bits)
    elif fp16 and (refusal := BACKENDS[chosen].half_refusal()):
        raise ConfigError(f"fp16=True: {refusal}")
    elif fp16 and not source.descriptor.fp16_safe:
        raise ConfigError(
            f"model {source.path.name} is not marked fp16-safe (its unbounded design can overflow half precision "
            "to inf/NaN on ordinary patterns); use fp16=False (or leave fp16 unset), or a model of a bounded design"
        )
    return make_backend(chosen, fp16=fp16, threads=threads, device=device, streams=streams)


def loaded_sessions() -> int:
    """How many sessions are loaded (for tests and ``paragon info``)."""
    with _lock:
        return len(_sessions)


def shared_sessions() -> dict[str, Session]:
    """A snapshot of the loaded sessions by cache key (for benchmarks and ``paragon info``)."""
    with _lock:
        return dict(_sessions)
