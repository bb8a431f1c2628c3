"""Make ``core.paragon`` exist, loading the native shim when VapourSynth did not.

A regular install puts the shim (``native/paragon_shim.c``) under
``site-packages/vapoursynth/plugins/vsparagon/``, where VapourSynth autoloads it
into every core. An editable install, or a vapoursynth installed somewhere else
than vsparagon, cannot be seen by autoload; there the copy bundled inside this
package is loaded with ``std.LoadPlugin``.
"""

from __future__ import annotations

import threading
from pathlib import Path

import vapoursynth as vs

NAMESPACE = "paragon"
"""The namespace the shim registers: ``core.paragon``."""

LIBRARY = Path(__file__).with_name("_lib") / "libparagon.so"
"""The copy of the shim bundled in the package (built by ``setup.py``)."""

_REINSTALL = "reinstall vsparagon: pip install --force-reinstall vsparagon (from a source checkout: pip install -e .)"

_lock = threading.Lock()


def ensure_registered(core: vs.Core | None = None) -> None:
    """Load the shim into ``core`` (default: the current one) unless ``core.paragon`` exists.

    Idempotent and thread-safe.

    Raises:
        vs.Error: the bundled library is missing or VapourSynth cannot load it.
    """
    core = vs.core if core is None else core
    with _lock:
        if hasattr(core, NAMESPACE):
            return
        if not LIBRARY.is_file():
            raise vs.Error(
                f"paragon: the native plugin {LIBRARY} is missing, so core.paragon cannot exist; {_REINSTALL}"
            )
        try:
            core.std.LoadPlugin(str(LIBRARY))
        except vs.Error as e:
            raise vs.Error(f"paragon: could not load the native plugin {LIBRARY} ({e}); {_REINSTALL}") from e
