"""vsparagon: ParagonSR video super-resolution for VapourSynth.

Importing ``vsparagon`` is cheap: torch and the inference runtimes are imported
only by the submodules that need them (``vsparagon.models``, ``vsparagon.export``).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
