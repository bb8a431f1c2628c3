"""Native TensorRT engines (being built; see issue 14)."""

from __future__ import annotations

from dataclasses import dataclass

from vsparagon.runtime.backends.gpu_pending import _Pending


@dataclass(frozen=True, kw_only=True)
class TensorRT(_Pending):
    """Native TensorRT engines (not yet implemented)."""

    name = "trt"
