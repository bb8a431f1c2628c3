"""The VapourSynth layer: ``vsparagon.upscale(clip, ...)`` and the ``core.paragon`` namespace.

Importing this package registers ``core.paragon`` in the current core when
VapourSynth did not autoload the native shim (editable installs).
"""

from __future__ import annotations

import contextlib

# Load OpenVINO's runtime before anything creates the VapourSynth core: vs-mlrt's
# OpenVINO plugin bundles another build, and whichever loads first wins. Where vs-mlrt's
# won (vspipe loads every plugin before the script), backend='openvino' runs on it through
# OpenVINO's C API instead (vsparagon.runtime.backends.openvino_c).
with contextlib.suppress(ImportError):
    import openvino  # noqa: F401

from vsparagon.plugin.upscale import upscale

__all__ = ["upscale"]


def _register() -> None:
    import sys

    import vapoursynth as vs

    try:
        from vsparagon.plugin._native import ensure_registered

        ensure_registered()
    except (ImportError, vs.Error) as exc:
        # vsparagon.upscale() still works; only the core.paragon namespace is missing.
        print(f"vsparagon: core.paragon is unavailable: {exc}", file=sys.stderr)


_register()
