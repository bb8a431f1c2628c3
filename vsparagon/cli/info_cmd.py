"""``paragon info``: versions, the VapourSynth plugin, shipped models, the GPU and which backends can run here.

``paragon info MODEL`` describes one model file instead: ours, an ONNX graph, or another project's
checkpoint (what spandrel detected and the receptive field measured for tiling).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

from vsparagon import __version__
from vsparagon.catalogue import ModelDescriptor
from vsparagon.runtime import gpu_info

_PACKAGES = (
    "onnxruntime",
    "onnxruntime-gpu",
    "tensorrt",
    "openvino",
    "torch",
    "numpy",
    "vapoursynth-bestsource",
    "imageio-ffmpeg",
)


def add_parser(commands: Any) -> None:
    """Register ``info`` on the ``paragon`` subcommand parser."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "info",
        help="show versions, the plugin, shipped models and available backends, or what a model file is",
        description=(
            "Report what vsparagon finds in this environment, and why a backend is unavailable. With MODEL, "
            "describe that model instead: architecture, scale, channels, parameters, size requirements, "
            "receptive radius (how tiles join) and fp16 safety."
        ),
    )
    parser.add_argument(
        "model",
        nargs="?",
        help="a .onnx/.safetensors file, another project's .pth/.ckpt/.safetensors checkpoint, or a shipped name",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``paragon info``."""
    if args.model is not None:
        model = describe_model(args.model)
        print(json.dumps(model, indent=2) if args.json else render_model(model))
        return 0
    report = gather()
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


def describe_model(name: str) -> dict[str, Any]:
    """What ``paragon info MODEL`` reports, as plain data.

    Raises:
        CheckpointError: a missing or unreadable file, or one spandrel does not recognise.
        MissingDependencyError: another project's checkpoint without the ``zoo`` extra.
    """
    from vsparagon.catalogue import is_foreign_checkpoint, shipped_models
    from vsparagon.cli.extras import require
    from vsparagon.runtime.source import open_model

    path = shipped_models().get(name) or Path(name)
    if path.is_file() and is_foreign_checkpoint(path):
        require("paragon info MODEL", "zoo")
        from vsparagon.export.cache import foreign_descriptor

        d = foreign_descriptor(path)
        kind = f"another project's checkpoint (loaded by spandrel {d.config['spandrel']}, weights only)"
    else:
        source = open_model(path)
        d = source.descriptor
        kind = f"ONNX graph ({source.precision})" if source.kind == "onnx" else "vsparagon checkpoint"
        if d.arch == "onnx":
            kind = "ONNX graph without vsparagon metadata (scale and channels probed)"
    return {
        "file": str(path),
        "kind": kind,
        "architecture": _architecture(d),
        "scale": d.scale,
        "channels": f"{d.in_channels} -> {d.out_channels} ({'grey' if d.in_channels == 1 else 'RGB'})",
        "parameters": d.config.get("parameters"),
        "size requirements": _size_requirements(d),
        "receptive radius": d.receptive_radius if d.receptive_radius >= 0 else None,
        "tiling": _tiling(d),
        "fp16 safe": d.fp16_safe,
        "default precision": _default_precision(d),
        "descriptor": json.loads(d.to_json()),
    }


def _default_precision(d: ModelDescriptor) -> str:
    """What ``fp16=None`` runs this model in on OpenVINO here, for 8-bit and deeper clips."""
    from vsparagon.runtime.precision import native_reduced, reduced_by_default

    if reduced_by_default(d, bits=8):
        return f"{native_reduced()} on openvino for 8-bit integer clips; fp32 for deeper and float clips"
    return "fp32"


def _architecture(d: ModelDescriptor) -> str:
    if d.config.get("loader") == "spandrel":
        tags = ", ".join(d.config.get("tags", []))
        return f"{d.config.get('name', d.arch)} (spandrel id {d.arch}; {d.config.get('purpose')}; {tags})"
    return d.arch if d.variant in ("custom", d.arch) else f"{d.arch} ({d.variant})"


def _size_requirements(d: ModelDescriptor) -> str:
    parts = [f"sides a multiple of {d.multiple_of}"] if d.multiple_of > 1 else []
    parts += [f"at least {d.min_size} px a side"] if d.min_size > 0 else []
    parts += ["square"] if d.square else []
    return ", ".join(parts) or "none"


def _tiling(d: ModelDescriptor) -> str:
    how = d.config.get("reach")
    if d.global_context:
        return f"global context ({how}): tiles are joined with blending, close to but not the whole-frame result"
    if d.receptive_radius < 0:
        return "receptive radius unknown: tiles get a 16 px overlap and join approximately"
    note = f" ({how})" if how else ""
    return f"join='crop' is exact with an overlap of {d.receptive_radius} px{note}"


def render_model(report: dict[str, Any]) -> str:
    """The human-readable report of ``paragon info MODEL``."""
    shown = {key: value for key, value in report.items() if key not in ("file", "descriptor")}
    if shown["parameters"] is None:
        shown["parameters"] = "not recorded"
    else:
        shown["parameters"] = f"{shown['parameters']:,}"
    shown["scale"] = f"x{shown['scale']}"
    if shown["receptive radius"] is None:
        shown["receptive radius"] = "unknown"
    else:
        shown["receptive radius"] = f"{shown['receptive radius']} px"
    shown["fp16 safe"] = "yes" if shown["fp16 safe"] else "no (fp16=True is refused)"
    return "\n".join([f"Model {report['file']}:", *(f"  {key}: {value}" for key, value in shown.items())])


def gather() -> dict[str, Any]:
    """Everything ``paragon info`` reports, as plain data."""
    from vsparagon.catalogue import shipped_models

    return {
        "vsparagon": __version__,
        "python": platform.python_version(),
        "vapoursynth": _vapoursynth(),
        "packages": {name: _version(name) for name in _PACKAGES},
        "ffmpeg": _ffmpeg(),
        "shipped_models": {name: str(path) for name, path in shipped_models().items()},
        "backends": _backends(),
        "gpu": gpu_info.describe(gpu_info.gpu_report()),
        "precision": _precision(),
        "devices": _devices(),
    }


def _backends() -> dict[str, str]:
    """Every backend, available or why not; ``auto`` first, with what it picks here."""
    from vsparagon.runtime.backends import AUTO_ORDER, BACKENDS
    from vsparagon.runtime.sessions import first_usable

    onnx, checkpoint = first_usable(torch_runs_it=False), first_usable(torch_runs_it=True)
    picks = onnx if onnx == checkpoint else f"{checkpoint} for a checkpoint or shipped model, {onnx} for other ONNX"
    states = {"auto": f"picks {picks} here (the first usable of {', '.join(AUTO_ORDER)})"}
    for name, cls in BACKENDS.items():
        reason = cls.unavailable()
        if name == "torch" and reason is None:
            cuda = gpu_info.torch_cuda_problem()
            states[name] = "available (CUDA)" if cuda is None else f"available on the CPU only ({cuda})"
        else:
            states[name] = _state(reason)
    return states


def _precision() -> dict[str, str]:
    """The CPU's native reduced precision and what ``fp16=None`` makes of it."""
    from vsparagon.runtime import hugepages
    from vsparagon.runtime.precision import REDUCED_MAX_BITS, describe_cpu, native_reduced

    native = native_reduced()
    if native is None:
        default = "fp32 everywhere (no native bf16/fp16 on this CPU; fp16=True is refused on openvino)"
    else:
        default = (
            f"{native} on openvino for our bounded x1/x2 models on integer clips of at most {REDUCED_MAX_BITS} "
            "bits (twice the speed; see docs/performance.md#precision); fp32 otherwise"
        )
    return {
        "cpu": describe_cpu(),
        "fp16=None": default,
        "fp16=False": "fp32 (exact)",
        "huge pages": hugepages.describe(),
    }


def _state(reason: str | None) -> str:
    return "available" if reason is None else f"unavailable: {reason}"


def _version(package: str) -> str | None:
    # TensorRT's wheels are named for their CUDA (tensorrt-cu12); ``tensorrt`` is only a meta-package
    for name in (package, *(f"{package}-cu{cuda}" for cuda in (13, 12, 11) if package == "tensorrt")):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
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
        ("trt", "vs-mlrt trt", "pip install vapoursynth-mlrt-trt"),
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
        from vsparagon.runtime.backends.openvino import import_openvino, shared_core

        found["openvino devices"] = shared_core(import_openvino()).available_devices
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
    lines += ["", "GPU:"]
    lines += [f"  {name}: {value}" for name, value in report["gpu"].items()]
    lines += ["", "Precision:"]
    lines += [f"  {name}: {value}" for name, value in report["precision"].items()]
    lines += ["", "Devices:"]
    lines += [f"  {name}: {value}" for name, value in report["devices"].items()]
    return "\n".join(lines)
