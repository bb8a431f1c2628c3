"""A model named by the user (shipped release or file) -> a runtime session, for the application tools."""

from __future__ import annotations

from vsparagon.catalogue import locate
from vsparagon.export.cache import exported_onnx, foreign_descriptor
from vsparagon.runtime.backends import Session
from vsparagon.runtime.sessions import open_session, resolve_backend
from vsparagon.runtime.source import ModelSource, open_model, resolve


def open_named(model: str, *, scale: int, backend: str = "auto", threads: int = 0) -> tuple[ModelSource, Session]:
    """Open ``model`` (a model file, another project's checkpoint, or a shipped release key) in full precision.

    A checkpoint on an ONNX backend is exported first (once, into the cache), and another project's
    checkpoint is described first: the tools run where PyTorch is installed, so they take those steps
    themselves, with the plugin's functions (``vsparagon.export.cache``).
    """
    source = resolve(variant=None, scale=scale, model=locate(model, scale=scale), describe=foreign_descriptor)
    config = resolve_backend(backend, source, fp16=False, threads=threads, device=0)
    if source.kind == "checkpoint" and not config.runs_checkpoints:
        source = open_model(exported_onnx(source.path, identity=source.identity))
    return source, open_session(config, source)


__all__ = ["open_named"]
