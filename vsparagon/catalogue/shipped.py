"""What ships: trained releases, their file names, and "name or path -> model file".

Two names, two concepts:

* a **release key** is what ``core.paragon.Upscale(variant=...)`` selects: ``tiny``,
  ``xs``, ``tiny_video``. A key names a trained release, not an architecture size: the
  ``tiny_video`` release is the ``paragonsr_tiny`` variant trained on video degradations
  (its descriptor says which variant it is).
* a **shipped name** is a release's file stem, ``<arch>_<key>_x<scale>``
  (``paragonsr_tiny_video_x2``): ``models/<name>.onnx`` and friends.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from vsparagon.catalogue.table import ARCHITECTURES, DEFAULT_ARCH, short_name, split_arch, variant_names
from vsparagon.errors import ConfigError

#: Folders of shipped, trained models: inside the installed package (wheels), then the repository's ``models/``.
SHIPPED_DIRS = (
    Path(__file__).resolve().parents[1] / "shipped",
    Path(__file__).resolve().parents[2] / "models",
)
#: File types a model path may have (``.pth``/``.ckpt``: foreign checkpoints, see :mod:`vsparagon.catalogue.files`).
MODEL_SUFFIXES = (".onnx", ".safetensors", ".pth", ".ckpt")
_NAME = re.compile(r"^(?P<rest>[a-z0-9]+(?:_[a-z0-9]+)+)_x(?P<scale>[1-9])$")


@dataclass(frozen=True, order=True)
class ShippedName:
    """A release's identity: architecture, release key and scale."""

    arch: str
    """Architecture name (``paragonsr``)."""
    key: str
    """Release key (``tiny``, ``tiny_video``): what ``variant=`` selects."""
    scale: int
    """Upscaling factor."""

    @property
    def stem(self) -> str:
        """The file stem, e.g. ``paragonsr_tiny_video_x2``."""
        return f"{self.arch}_{self.key}_x{self.scale}"

    @property
    def selector(self) -> str:
        """What ``variant=`` takes for this release (ParagonSR's keys without the prefix)."""
        return self.key if self.arch == DEFAULT_ARCH else f"{self.arch}_{self.key}"

    @classmethod
    def parse(cls, stem: str) -> ShippedName | None:
        """``paragonsr_tiny_video_x2`` -> ShippedName; None for a stem that is not a shipped name."""
        match = _NAME.match(stem)
        if match is None:
            return None
        arch, key = split_arch(match["rest"])
        if not match["rest"].startswith(f"{arch.name}_") or not key:
            return None
        return cls(arch.name, key, int(match["scale"]))

    @classmethod
    def of(cls, selector: str, scale: int) -> ShippedName:
        """The release ``variant=selector`` names at ``scale`` (``"tiny"`` or ``"paragonsr_tiny"``)."""
        arch, key = split_arch(selector)
        return cls(arch.name, key, scale)


def shipped_models() -> dict[str, Path]:
    """Shipped name (e.g. ``paragonsr_tiny_x2``) -> its fp32 ONNX file, in table order."""
    found: dict[ShippedName, Path] = {}
    for folder in SHIPPED_DIRS:
        if folder.is_dir():
            for path in folder.glob("*_x[1-9].onnx"):
                name = ShippedName.parse(path.stem)
                if name is not None and name.arch in ARCHITECTURES and name.scale in ARCHITECTURES[name.arch].scales:
                    found.setdefault(name, path)
    return {name.stem: found[name] for name in sorted(found, key=_listing_order)}


def _listing_order(name: ShippedName) -> tuple[int, int, str, int]:
    """Architectures in table order; the variant table's order (tiny, xs, ...), then other keys; scales ascending."""
    sizes = [short_name(v) if name.arch == DEFAULT_ARCH else v for v in variant_names(name.arch)]
    rank = sizes.index(name.selector) if name.selector in sizes else len(sizes)
    return list(ARCHITECTURES).index(name.arch), rank, name.key, name.scale


def is_model_path(value: str | os.PathLike[str]) -> bool:
    """Whether ``value`` names a model file (by its suffix or a path separator) rather than a release key."""
    text = os.fspath(value)
    return Path(text).suffix.lower() in MODEL_SUFFIXES or os.sep in text or isinstance(value, os.PathLike)


def shipped_path(selector: str, scale: int) -> Path:
    """The fp32 ONNX file of the release ``variant=selector`` at ``scale``.

    Raises:
        ConfigError: an unknown key (listing the valid ones), or a key that does not ship at
            ``scale`` (listing what ships, and how to use a file instead).
    """
    wanted = ShippedName.of(selector, scale)
    available = shipped_models()
    names = [n for n in map(ShippedName.parse, available) if n is not None]
    sizes = [short_name(v) for v in variant_names()]
    keys = {n.selector for n in names}
    if wanted.selector not in sizes and wanted.selector not in keys:
        extra = [k for k in dict.fromkeys(n.selector for n in names) if k not in sizes]
        raise ConfigError(
            f"unknown variant {selector!r}; valid variants: {', '.join(sizes)}"
            + (f" (and shipped: {', '.join(extra)})" if extra else "")
        )
    if wanted.stem in available:
        return available[wanted.stem]
    listing = ", ".join(f"variant={n.selector!r} scale={n.scale}" for n in names) or "none yet"
    raise ConfigError(
        f"no trained model ships for variant {wanted.selector!r} at scale {scale} (shipped: {listing}); "
        "pick one of those, or pass model='path/to/model.onnx' "
        "(e.g. from `paragon export --variant tiny --scale 2 --random-init`)"
    )


def locate(model: str | os.PathLike[str], *, scale: int) -> Path:
    """Name or path -> model file: a path (see :data:`MODEL_SUFFIXES`) as given, else the shipped release."""
    if is_model_path(model):
        return Path(model)
    return shipped_path(str(model), scale)


__all__ = [
    "MODEL_SUFFIXES",
    "SHIPPED_DIRS",
    "ShippedName",
    "is_model_path",
    "locate",
    "shipped_models",
    "shipped_path",
]
