"""Checkpoints exported to ONNX on demand, once, into the model cache.

The runtime never imports torch, so it cannot turn a checkpoint into a graph or learn what a
foreign checkpoint is; a caller that wants an ONNX backend to run one asks for this export step
(the plugin and the tools alike).
"""

from __future__ import annotations

from pathlib import Path

from vsparagon import models
from vsparagon._files import cached_conversion
from vsparagon.catalogue.files import is_foreign_checkpoint
from vsparagon.export.foreign import foreign_descriptor, foreign_onnx
from vsparagon.export.onnx import export_onnx


def exported_onnx(checkpoint: Path, *, identity: str, fp16: bool = False) -> Path:
    """The ONNX export of ``checkpoint`` (fused, parity-checked against PyTorch), built on first use.

    Args:
        checkpoint: a ``.safetensors`` file written by ``vsparagon.models.save``, or another project's
            checkpoint (:func:`~vsparagon.export.foreign.foreign_onnx`: cached by the file's SHA-256).
        identity: the file's content identity (it names the cache entry, so an edited file is re-exported).
        fp16: a float16 graph (its parity check is the one ``paragon export --fp16`` makes).
    """
    if is_foreign_checkpoint(checkpoint):
        return foreign_onnx(checkpoint, fp16=fp16)
    return cached_conversion(
        checkpoint,
        identity,
        "fp16" if fp16 else "fp32",
        lambda target: export_onnx(models.load(checkpoint, fused=True), target, fp16=fp16),
    )


__all__ = ["exported_onnx", "foreign_descriptor"]
