"""Small file helpers shared by every layer (no heavy imports)."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_path)`` and move the result to ``path`` only if it succeeded.

    The temporary file lives in the destination folder so the final rename is
    atomic; on any failure it is removed and ``path`` is left as it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cache_dir() -> Path:
    """Where converted models are kept.

    ``$VSPARAGON_CACHE``, else ``$XDG_CACHE_HOME/vsparagon``, else ``~/.cache/vsparagon``.
    """
    base = os.environ.get("VSPARAGON_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vsparagon"
    )
    return Path(base)


def model_cache() -> Path:
    """The folder of converted ONNX files (exports, fp16 conversions, CPU rewrites)."""
    return cache_dir() / "onnx"


def cached_conversion(source: Path, identity: str, tag: str, build: Callable[[Path], object]) -> Path:
    """The conversion ``tag`` of ``source`` in :func:`model_cache`, made by ``build(target)`` on first use."""
    folder = model_cache()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / cached_name(source, identity, tag)
    if not target.exists():
        build(target)
    return target


def cached_name(source: Path, identity: str, tag: str) -> str:
    """File name of a conversion of ``source`` (``STEM-IDENTITY-TAG.onnx``).

    A file that is itself a conversion in the cache already carries its source's identity in its
    name, so a further conversion of it is ``STEM-TAG.onnx`` (e.g. ``m-1a2b-fp32-cpu2.onnx``).
    """
    if is_cached(source):
        return f"{source.stem}-{tag}.onnx"
    return f"{source.stem}-{identity}-{tag}.onnx"


def is_cached(path: Path) -> bool:
    """Whether ``path`` is a conversion the model cache made (``cache_dir()/onnx/STEM-IDENTITY-TAG.onnx``)."""
    return (
        re.search(r"-[0-9a-f]{16}-(fp32|fp16)", path.stem) is not None
        and path.parent.resolve() == model_cache().resolve()
    )
