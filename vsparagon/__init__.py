"""vsparagon: ParagonSR video super-resolution for VapourSynth.

Importing ``vsparagon`` is cheap: torch and the inference runtimes are imported
only by the submodules that need them (``vsparagon.models``, ``vsparagon.export``,
``vsparagon.plugin``). In a VapourSynth script (``vapoursynth`` already imported),
``import vsparagon`` also registers ``core.paragon`` where VapourSynth's autoload
cannot see it (editable installs). ``vsparagon.upscale`` is the Python API of
``core.paragon.Upscale``.
"""

from __future__ import annotations

import sys
from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "upscale"]


def __getattr__(name: str) -> Any:
    if name == "upscale":
        from vsparagon.plugin import upscale

        return upscale
    raise AttributeError(f"module 'vsparagon' has no attribute {name!r}")


if "vapoursynth" in sys.modules:  # a VapourSynth script: make core.paragon available now
    import vsparagon.plugin  # noqa: F401
