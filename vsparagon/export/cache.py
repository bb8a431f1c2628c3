"""Checkpoints exported to ONNX on demand, once, into the model cache.

The runtime never imports torch, so it cannot turn a ``.safetensors`` checkpoint into
a graph; a caller that wants an ONNX backend to run one asks for this export step.
"""

from __future__ import annotations

from pathlib import Path

from vsparagon import models
from vsparagon._files import cached_conversion
from vsparagon.export.onnx import export_onnx


def exported_onnx(checkpoint: Path, *, identity: str, fp16: bool = False) -> Path:
    """The ONNX export of ``checkpoint`` (fused, parity-checked against PyTorch), built on first use.

    Args:
        checkpoint: a ``.safetensors`` file written by ``vsparagon.models.save``.
        identity: the file's content identity (it names the cache entry, so an edited file is re-exported).
        fp16: a float16 graph (its parity check is the one ``paragon export --fp16`` makes).
    """
    return cached_conversion(
        checkpoint,
        identity,
        "fp16" if fp16 else "fp32",
        lambda target: export_onnx(models.load(checkpoint, fused=True), target, fp16=fp16),
    )


__all__ = ["exported_onnx"]
