"""One loaded session per (backend config, model file): shared by every call in a process."""

from __future__ import annotations

import importlib.util
import sys
import threading

from vsparagon.runtime.backends import AUTO_ORDER, Backend, Session, make_backend
from vsparagon.runtime.source import ModelSource

_sessions: dict[str, Session] = {}
_lock = threading.Lock()


def pick_auto() -> str:
    """The backend ``auto`` means: the first usable of :data:`AUTO_ORDER` (OpenVINO, then ONNX Runtime)."""
    from vsparagon.runtime.backends.openvino import CLASH_HINT, openvino_usable

    for name in AUTO_ORDER:
        if name == "openvino":
            if openvino_usable():
                return name
            if importlib.util.find_spec("openvino") is not None:
                print(f"vsparagon: backend='auto' uses ort-cpu: OpenVINO is unusable: {CLASH_HINT}", file=sys.stderr)
        elif importlib.util.find_spec("onnxruntime") is not None:
            return name
    return "torch"


def open_session(backend: Backend, source: ModelSource) -> Session:
    """Return the shared session for this backend config and model, loading it on first use."""
    key = backend.cache_key(source)
    with _lock:
        session = _sessions.get(key)
        if session is None:
            session = backend.open(source)
            _sessions[key] = session
        return session


def resolve_backend(
    name: str, source: ModelSource, *, fp16: bool, threads: int, device: int, streams: int = 1
) -> Backend:
    """Turn a ``backend=`` string (``auto`` included) into a backend config."""
    chosen = pick_auto() if name == "auto" else name
    return make_backend(chosen, fp16=fp16, threads=threads, device=device, streams=streams)


def loaded_sessions() -> int:
    """How many sessions are loaded (for tests and ``paragon info``)."""
    with _lock:
        return len(_sessions)


def shared_sessions() -> dict[str, Session]:
    """A snapshot of the loaded sessions by cache key (for benchmarks and ``paragon info``)."""
    with _lock:
        return dict(_sessions)
