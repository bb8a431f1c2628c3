"""Foreign checkpoints as described, exportable models: the one conversion step for spandrel's zoo.

A foreign checkpoint is described once (spandrel's facts plus the measured receptive field) and
exported once per opset and precision; both land in the model cache under the file's name, the
SHA-256 of its content and the versions of the probe and spandrel, so an edited file is converted
again and an unchanged one, under the same name, is not. Every backend then runs
the ONNX file as it runs our own exports (``backend="torch"`` runs the checkpoint itself).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import threading
from pathlib import Path

from vsparagon._files import atomic_write, cached_conversion, model_cache
from vsparagon.catalogue.descriptor import UNKNOWN_RADIUS, ModelDescriptor
from vsparagon.errors import CheckpointError
from vsparagon.export.onnx import DEFAULT_OPSET, ExportReport, export_module
from vsparagon.export.reach import PROBE_VERSION, probe_reach
from vsparagon.models.checkpoint import _first_line
from vsparagon.models.foreign import ForeignModel, import_spandrel, load_foreign

#: spandrel's tiling advice that declares global context (no probe needed).
DECLARED_GLOBAL = {
    "discouraged": "spandrel discourages tiling this architecture (it relies on global context)",
    "internal": "the architecture tiles internally and expects the whole picture",
}
_TORCH_HINT = "; run the checkpoint itself with backend='torch'"

_digests: dict[tuple[str, int, int], str] = {}
_digests_lock = threading.Lock()
# The model last described, by file digest, until its export takes it: a first use loads the file once.
_described: dict[str, ForeignModel] = {}


def file_sha256(path: Path) -> str:
    """SHA-256 of the whole file, remembered per (file, size, modification time) in this process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _digests_lock:
        known = _digests.get(key)
    if known is None:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        known = digest.hexdigest()
        with _digests_lock:
            _digests[key] = known
    return known


def foreign_descriptor(path: str | os.PathLike[str], *, model: ForeignModel | None = None) -> ModelDescriptor:
    """The descriptor of a foreign checkpoint: measured on first use, then read from the cache.

    Args:
        path: the checkpoint.
        model: the checkpoint already loaded (else it is loaded when the cache does not have it).

    Raises:
        CheckpointError: the file is unsafe, unreadable, unknown to spandrel or not image-to-image, or
            the model fails on a probe picture of the sizes spandrel allows.
        MissingDependencyError: spandrel is not installed.
    """
    source = Path(path)
    digest = file_sha256(source)
    target = model_cache() / f"{source.stem}-{digest[:16]}-{_converter()}.json"
    if target.exists():
        return ModelDescriptor.from_json(target.read_text(), source=str(target))
    loaded_here = model is None
    model = model or load_foreign(source)
    try:
        descriptor = describe(model, sha256=digest)
    except Exception as exc:  # the model's own forward failed on a probe of the sizes spandrel allows
        square = ", square" if model.square else ""
        size = f"sides a multiple of {model.multiple_of}, at least {model.min_size} px{square}"
        raise CheckpointError(
            f"{source}: the {model.name} model fails on a test picture of the sizes spandrel "
            f"{model.spandrel_version} allows it ({size}) while its receptive field is measured "
            f"({type(exc).__name__}: {_first_line(exc)}); it would fail on frames too: update spandrel "
            "(pip install -U spandrel) or use another checkpoint"
        ) from None
    if loaded_here:  # for the export that usually follows (foreign_onnx), which then need not load it again
        with _digests_lock:
            _described.clear()
            _described[digest] = model
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, lambda tmp: tmp.write_text(descriptor.to_json()))
    return descriptor


def describe(model: ForeignModel, *, sha256: str) -> ModelDescriptor:
    """What the runtime needs to know about ``model``: spandrel's facts plus its measured receptive field."""
    declared = DECLARED_GLOBAL.get(model.tiling)
    if declared is None:
        reach = probe_reach(
            model.module.raw,
            channels=model.in_channels,
            scale=model.scale,
            multiple_of=model.multiple_of,
            min_size=model.min_size,
            parameters=model.parameters,
        )
        radius, global_context, note = reach.radius, reach.global_context, reach.note
    else:
        radius, global_context, note = UNKNOWN_RADIUS, True, declared
    return ModelDescriptor(
        arch=model.architecture,
        variant="custom",
        scale=model.scale,
        in_channels=model.in_channels,
        out_channels=model.out_channels,
        multiple_of=model.multiple_of,
        min_size=model.min_size,
        square=model.square,
        receptive_radius=radius,
        global_context=global_context,
        fp16_safe=model.supports_half,
        fused=True,
        config={
            "loader": "spandrel",
            "spandrel": model.spandrel_version,
            "name": model.name,
            "tags": list(model.tags),
            "purpose": model.purpose,
            "parameters": model.parameters,
            "tiling": model.tiling,
            "reach": note,
            "sha256": sha256,
        },
    )


def foreign_onnx(path: str | os.PathLike[str], *, fp16: bool = False, opset: int = DEFAULT_OPSET) -> Path:
    """The ONNX export of a foreign checkpoint (parity-checked against PyTorch), made once into the cache."""
    source = Path(path)
    precision = "fp16" if fp16 else "fp32"
    return cached_conversion(
        source,
        file_sha256(source)[:16],
        f"{precision}-opset{opset}-{_converter()}",
        lambda target: export_foreign(source, target, fp16=fp16, opset=opset),
    )


def export_foreign(
    path: str | os.PathLike[str], target: str | os.PathLike[str], *, fp16: bool = False, opset: int = DEFAULT_OPSET
) -> ExportReport:
    """Write a foreign checkpoint as ONNX (``paragon export x.pth -o x.onnx``), descriptor in its metadata.

    Raises:
        ExportError: the exporter failed, or the graph does not reproduce PyTorch (e.g. a size frozen at trace time).
    """
    source = Path(path)
    digest = file_sha256(source)
    with _digests_lock:
        model = _described.pop(digest, None)
    model = model or load_foreign(source)
    descriptor = foreign_descriptor(source, model=model)
    return export_module(model.module, descriptor, target, fp16=fp16, opset=opset, hint=_TORCH_HINT)


def _converter() -> str:
    """What a conversion depends on besides the file (cache names record it): the probe, and spandrel."""
    try:
        version = importlib.metadata.version("spandrel")
    except importlib.metadata.PackageNotFoundError:
        version = import_spandrel().__version__  # the error that names the zoo extra
    return f"reach{PROBE_VERSION}-spandrel{version}"


__all__ = [
    "DECLARED_GLOBAL",
    "describe",
    "export_foreign",
    "file_sha256",
    "foreign_descriptor",
    "foreign_onnx",
]
