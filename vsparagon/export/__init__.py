"""Fused checkpoint -> ONNX (fp32/fp16), parity-checked against PyTorch. Needs torch and onnx."""

from vsparagon.export.onnx import (
    DEFAULT_OPSET,
    FP16_TOLERANCE,
    FP32_TOLERANCE,
    OPSETS,
    ExportReport,
    export_onnx,
    read_onnx_descriptor,
)

__all__ = [
    "DEFAULT_OPSET",
    "FP16_TOLERANCE",
    "FP32_TOLERANCE",
    "OPSETS",
    "ExportReport",
    "export_onnx",
    "read_onnx_descriptor",
]
