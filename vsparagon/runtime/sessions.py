"""One loaded session per (backend config, model file): shared by every call in a process."""

from __future__ import annotations

import functools
import importlib.util
import sys
import threading

from vsparagon.errors import ConfigError
from vsparagon.runtime.backends import AUTO_ORDER, BACKENDS, Backend, Session, backend_names, make_backend
from vsparagon.runtime.source import ModelSource

_sessions: dict[str, Session] = {}
_lock = threading.Lock()


def pick_auto() -> str:
    """The backend ``auto`` means: the first usable of :data:`AUTO_ORDER` (OpenVINO, then ONNX Runtime)."""
    for name in AUTO_ORDER:
        if name == "openvino":
            reason = BACKENDS[name].unavailable()
            if reason is None:
                return name
            if importlib.util.find_spec("openvino") is not None:  # installed, yet unusable: say why, once
                _say_once(f"vsparagon: backend='auto' skips OpenVINO: {reason}")
        elif importlib.util.find_spec("onnxruntime") is not None:
            return name
    return "torch"


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
    chosen = pick_auto() if name == "auto" else name
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
