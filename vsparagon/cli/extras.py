"""Which optional extra each command needs, checked before anything heavy is imported.

A command whose extra is missing stops with one line that names the extra and the
missing modules (exit 2), instead of an ImportError from deep inside.
"""

from __future__ import annotations

import importlib.util

from vsparagon.errors import MissingDependencyError

#: Extra (as in pyproject.toml) -> the modules its packages provide.
EXTRAS: dict[str, tuple[str, ...]] = {
    "export": ("torch", "onnx"),
    "train": ("torch", "onnx", "yaml", "PIL", "av", "matplotlib"),
    "video": ("imageio_ffmpeg",),
    "zoo": ("torch", "onnx", "spandrel", "torchvision", "einops"),
}


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here, found without importing them.

    (bestsource, a VapourSynth plugin with no Python module, is checked where it is used:
    it may come from another installer than pip.)
    """
    return [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]


def require(command: str, extra: str) -> None:
    """Raise MissingDependencyError (one line: the extra to install) unless ``extra`` is installed."""
    absent = missing(extra)
    if absent:
        raise MissingDependencyError(
            f"{command} needs the {extra} extra ({', '.join(absent)} not installed): pip install 'vsparagon[{extra}]'"
        )


__all__ = ["EXTRAS", "missing", "require"]
