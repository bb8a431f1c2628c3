"""GPU backends whose implementation has not landed yet: they fail with a clear message."""

from __future__ import annotations

from dataclasses import dataclass

from vsparagon.runtime.backends.base import Backend, BackendError, Session
from vsparagon.runtime.source import ModelSource


@dataclass(frozen=True, kw_only=True)
class _Pending(Backend):
    def open(self, source: ModelSource) -> Session:
        raise BackendError(str(self.unavailable()))

    @classmethod
    def unavailable(cls) -> str | None:
        """Always: the GPU backends have not landed."""
        return (
            f"backend={cls.name!r} (GPU) is not available in this version of vsparagon yet; "
            "use backend='ort-cpu', 'openvino' or 'torch'"
        )
