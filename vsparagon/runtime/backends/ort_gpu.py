"""ONNX Runtime on a GPU: the CUDA and TensorRT execution providers (being built; see issue 14)."""

from __future__ import annotations

from dataclasses import dataclass

from vsparagon.runtime.backends.gpu_pending import _Pending


@dataclass(frozen=True, kw_only=True)
class OrtCuda(_Pending):
    """ONNX Runtime with the CUDA execution provider (not yet implemented)."""

    name = "ort-cuda"


@dataclass(frozen=True, kw_only=True)
class OrtTensorRT(_Pending):
    """ONNX Runtime with the TensorRT execution provider (not yet implemented)."""

    name = "ort-trt"
