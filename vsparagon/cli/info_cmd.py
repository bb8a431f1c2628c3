"""``paragon info``: versions, the VapourSynth plugin, shipped models and which backends can run here."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import platform
import subprocess
from typing import Any

from vsparagon import __version__

_PACKAGES = ("onnxruntime", "openvino", "torch", "numpy", "vapoursynth-bestsource", "imageio-ffmpeg")


def add_parser(commands: Any) -> None:
    """Register ``info`` on the ``paragon`` subcommand parser."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "info",
        help="show versions, the plugin, shipped models and available backends",
        description="Report what vsparagon finds in this environment, and why a backend is unavailable.",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``paragon info``."""
    report = gather()
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


def gather() -> dict[str, Any]:
    """Everything ``paragon info`` reports, as plain data."""
    from vsparagon.catalogue import shipped_models
    from vsparagon.runtime.backends import BACKENDS

    return {
        "vsparagon": __version__,
        "python": platform.python_version(),
        "vapoursynth": _vapoursynth(),
        "packages": {name: _version(name) for name in _PACKAGES},
        "ffmpeg": _ffmpeg(),
        "shipped_models": {name: str(path) for name, path in shipped_models().items()},
        "backends": {name: _state(cls.unavailable()) for name, cls in BACKENDS.items()},
        "devices": _devices(),
    }


def _state(reason: str | None) -> str:
    return "available" if reason is None else f"unavailable: {reason}"


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _vapoursynth() -> dict[str, Any]:
    with contextlib.suppress(ImportError):  # OpenVINO first, as vsparagon.plugin does (vs-mlrt ov clash)
        import openvino  # noqa: F401
    try:
        import vapoursynth as vs
    except ImportError as exc:
        return {"error": f"VapourSynth cannot be imported: {exc}"}
    core = vs.core
    autoloaded = hasattr(core, "paragon")
    found: dict[str, Any] = {"version": str(core.core_version).splitlines()[0]}
    try:
        import vsparagon.plugin  # noqa: F401  (registers core.paragon where autoload cannot)
    except Exception as exc:
        found["paragon"] = f"not loaded: {exc}"
    if hasattr(core, "paragon"):
        how = "autoloaded" if autoloaded else "loaded by vsparagon (editable install)"
        found["paragon"] = f"{how} from {core.paragon.plugin_path}"
    else:
        found.setdefault("paragon", "not loaded")
    for namespace, label, fix in (
        ("bs", "bestsource", "pip install 'vsparagon[video]'"),
        ("ort", "vs-mlrt ort", "pip install vapoursynth-mlrt-ort"),
        ("ov", "vs-mlrt ov", "pip install vapoursynth-mlrt-ov"),
    ):
        plugin = getattr(core, namespace, None)
        found[label] = plugin.plugin_path if plugin is not None else f"not installed ({fix})"
    return found


def _ffmpeg() -> str:
    try:
        from vsparagon.video.ffmpeg import ffmpeg_exe

        exe = ffmpeg_exe()
        first = subprocess.run([exe, "-version"], capture_output=True, text=True, timeout=30).stdout.split("\n")[0]
    except Exception as exc:
        return f"unavailable: {exc}"
    return f"{first.split(' Copyright')[0]} ({exe})"


def _devices() -> dict[str, Any]:
    found: dict[str, Any] = {}
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime as ort

        found["onnxruntime providers"] = ort.get_available_providers()
    with contextlib.suppress(Exception):
        from vsparagon.runtime.backends.openvino import import_openvino

        found["openvino devices"] = import_openvino().Core().available_devices
    if importlib.util.find_spec("torch") is not None:
        import torch

        found["torch cuda devices"] = torch.cuda.device_count()
    return found


def render(report: dict[str, Any]) -> str:
    """The human-readable report."""
    lines = [f"vsparagon {report['vsparagon']} (Python {report['python']})", "", "VapourSynth:"]
    lines += [f"  {key}: {value}" for key, value in report["vapoursynth"].items()]
    lines += ["", "Packages:"]
    lines += [f"  {name}: {version or 'not installed'}" for name, version in report["packages"].items()]
    lines += [f"  ffmpeg: {report['ffmpeg']}", "", "Shipped models:"]
    lines += [f"  {name}: {path}" for name, path in report["shipped_models"].items()] or [
        "  none yet (pass --model / model= with an exported .onnx)"
    ]
    lines += ["", "Backends:"]
    lines += [f"  {name}: {state}" for name, state in report["backends"].items()]
    lines += ["", "Devices:"]
    lines += [f"  {name}: {value}" for name, value in report["devices"].items()]
    return "\n".join(lines)
