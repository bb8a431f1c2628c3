"""The one release path: a trained model -> fused safetensors + parity-checked ONNX files.

Both the end of ``paragon train`` and ``paragon release`` call :func:`write_release`, so a
model released either way is the same files, made the same way.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from vsparagon.export.onnx import ExportReport, export_onnx
from vsparagon.models import checkpoint as model_files
from vsparagon.models.fusion import fuse
from vsparagon.models.registry import entry_of


@dataclass(frozen=True)
class ReleaseFiles:
    """What :func:`write_release` wrote."""

    weights: Path
    """``STEM.safetensors``: the fused model."""
    onnx: ExportReport | None
    """``STEM.onnx`` (fp32), when asked for."""
    onnx_fp16: ExportReport | None
    """``STEM_fp16.onnx``, when asked for."""


def write_release(model: nn.Module, folder: Path, stem: str, *, onnx: bool = True, fp16: bool = True) -> ReleaseFiles:
    """Fuse a copy of ``model`` (fp32, CPU) and write ``STEM.safetensors`` and the ONNX files asked for.

    ``model`` is not modified. Files are written atomically and readable by everyone
    (they are meant to be shipped).
    """
    entry_of(model)  # a model of a registered architecture, or TypeError
    fused = fuse(copy.deepcopy(model).float().cpu().eval())
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / f"{stem}.safetensors"
    model_files.save(fused, weights)
    report32 = export_onnx(fused, folder / f"{stem}.onnx") if onnx else None
    report16 = export_onnx(fused, folder / f"{stem}_fp16.onnx", fp16=True) if fp16 else None
    for report in (report32, report16):
        if report is not None:
            report.path.chmod(0o644)  # atomic writes create 0600 files
    weights.chmod(0o644)
    return ReleaseFiles(weights, report32, report16)


__all__ = ["ReleaseFiles", "write_release"]
