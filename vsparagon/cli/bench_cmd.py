"""``paragon bench``: frames per second and peak memory of a model on a backend, beside vs-mlrt."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from vsparagon.errors import ConfigError, MissingDependencyError

PEERS = ("mlrt-ort", "mlrt-ov", "mlrt-ov-defaults", "mlrt-ov-defaults-8bit")
"""vs-mlrt exact (ort; ov with its precision hint forced to f32) and as it comes (ov defaults: bf16 where the CPU has
it), on the float clip and on an 8-bit source (converted to RGBS for it and back). Ours reduced
(``ours-openvino-fp16``) joins where the CPU runs bf16/fp16 natively, and ours as it comes on the 8-bit source
(``ours-default-8bit``) beside vs-mlrt: mode for mode."""


def add_parser(commands: Any) -> None:
    """Register ``bench`` on the ``paragon`` subcommand parser."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "bench",
        help="measure frames per second and peak memory, beside vs-mlrt when installed",
        description=(
            "Upscale a synthetic RGBS clip of --size with the model on each --backend, and with vs-mlrt's "
            "core.ort/core.ov (with --gpu also core.trt and core.ort on CUDA) on the same ONNX when installed. "
            "Each contender runs in its own process: "
            "warm-up frames, then --frames timed frames; peak memory is that process's VmHWM from filter "
            "creation to the last frame."
        ),
    )
    parser.add_argument("--variant", default="tiny", help="shipped model: tiny, xs, s, m, l, xl (default tiny)")
    parser.add_argument("--scale", type=int, default=2, help="upscaling factor 1-4 (default 2)")
    parser.add_argument("--model", type=Path, help="a .onnx or .safetensors model instead of a shipped variant")
    parser.add_argument(
        "--random-init", action="store_true", help="benchmark an untrained --variant (exported once; needs torch)"
    )
    parser.add_argument(
        "--backend", default="ort-cpu,openvino", help="comma-separated, may be empty (default ort-cpu,openvino)"
    )
    parser.add_argument("--size", default="320x240", help="input frame size WxH (default 320x240)")
    parser.add_argument("--frames", type=int, default=8, help="timed frames (default 8)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="untimed frames first (default: one per frame in flight, the CPU count: a CPU backend's every "
        "stream builds its kernels on its first frame)",
    )
    parser.add_argument("--threads", type=int, default=0, help="inference threads; 0 = all cores")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every contender this many times, each time in a fresh process, the order reversed every "
        "other round; fps is the best round, with the median beside it (default 1)",
    )
    parser.add_argument(
        "--gpu",
        action="store_true",
        help="add the GPU rows: ours on trt, ort-trt, ort-cuda and torch (CUDA), and vs-mlrt's trt and ort (CUDA) "
        "when installed; a row that cannot run here is listed as skipped, with the reason",
    )
    parser.add_argument(
        "--bare",
        action="store_true",
        help="after each of our rows, the backend's session alone in a loop on the same frame (no VapourSynth), "
        "and the plugin's overhead against it",
    )
    parser.add_argument("--no-peers", action="store_true", help="skip vs-mlrt even when installed")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(run=run)


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` -> (640, 480).

    Raises:
        ConfigError: not WxH with both from 16 to 8192.
    """
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or not all(16 <= int(v) <= 8192 for v in match.groups()):
        raise ConfigError(f"--size takes WIDTHxHEIGHT with each from 16 to 8192 (e.g. 640x480), got {text!r}")
    return int(match[1]), int(match[2])


def run(args: argparse.Namespace) -> int:
    """Execute ``paragon bench``."""
    width, height = parse_size(args.size)
    if args.warmup is None:
        args.warmup = os.cpu_count() or 1  # a child renders core.num_threads frames at once: VapourSynth's default
    if args.frames < 1 or args.warmup < 0:
        raise ConfigError(f"--frames must be >= 1 and --warmup >= 0, got {args.frames} and {args.warmup}")
    if not 1 <= args.rounds <= 100:
        raise ConfigError(f"--rounds takes 1 to 100, got {args.rounds}")
    from vsparagon.bench.rows import (
        GPU_OURS,
        GPU_PEERS,
        OURS_DEFAULT_8BIT,
        add_overheads,
        bars,
        combine_rounds,
        measure_in_child,
    )
    from vsparagon.runtime.backends import backend_names
    from vsparagon.runtime.precision import native_reduced
    from vsparagon.runtime.source import open_model, resolve

    backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    for name in backends:
        if name not in backend_names():
            raise ConfigError(f"unknown backend {name!r}; valid backends: {', '.join(backend_names())}")
    if args.random_init and args.model is not None:
        raise ConfigError("give either --model or --random-init (with --variant/--scale), not both")
    model = _random_model(args.variant, args.scale) if args.random_init else args.model
    source = resolve(variant=args.variant, scale=args.scale, model=model)
    keys = [f"ours-{b}" for b in backends]
    keys += [key for key in GPU_OURS if args.gpu and key not in keys]
    if args.bare:
        keys = [row for key in keys for row in (key, key.replace("ours-", "bare-", 1))]
    if "openvino" in backends and native_reduced() is not None:
        keys.append("ours-openvino-fp16")
    if not args.no_peers and source.kind == "onnx" and source.precision == "fp32":
        if {"ort-cpu", "openvino"} & set(backends):
            keys += [OURS_DEFAULT_8BIT, *PEERS]
        keys += GPU_PEERS if args.gpu else ()
    threads = args.threads or os.cpu_count() or 1
    runs: dict[str, list[dict[str, Any]]] = {key: [] for key in keys}
    for r in range(args.rounds):
        for key in keys if r % 2 == 0 else keys[::-1]:
            if runs[key] and "skipped" in runs[key][0]:
                continue  # cannot run here: once is enough
            step = f" (round {r + 1}/{args.rounds})" if args.rounds > 1 else ""
            print(f"paragon bench: {key}{step} ...", file=sys.stderr, flush=True)
            config = {"key": key, "model": str(source.path), "width": width, "height": height}
            config |= {"warmup": args.warmup, "frames": args.frames, "threads": threads}
            runs[key].append(measure_in_child(config))
    results = {key: combine_rounds(rounds) for key, rounds in runs.items()}
    add_overheads(results)
    d = open_model(source.path).descriptor
    report = {
        "model": str(source.path),
        "variant": d.variant,
        "scale": d.scale,
        "input": f"{width}x{height} RGBS",
        "warmup": args.warmup,
        "frames": args.frames,
        "threads": threads,
        "rounds": args.rounds,
        "results": results,
        "bars": bars(results),
    }
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


def _random_model(variant: str, scale: int) -> Path:
    """A random-init export of ``variant`` at ``scale``, made once in the cache folder."""
    from vsparagon._files import cache_dir

    target = cache_dir() / "bench" / f"random_{variant}_x{scale}.onnx"
    if not target.exists():
        try:
            import torch

            from vsparagon import models
            from vsparagon.export import export_onnx
        except ImportError as exc:
            raise MissingDependencyError(
                f"--random-init needs PyTorch and ONNX ({exc.name} is missing): pip install 'vsparagon[export]'"
            ) from None
        print(f"paragon bench: exporting an untrained {variant} x{scale} to {target}", file=sys.stderr, flush=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        export_onnx(models.create(variant, scale=scale), target)
    return target


def render(report: dict[str, Any]) -> str:
    """The results table (median, GPU memory and overhead columns where some row has them), then the bars."""
    results = report["results"]
    rounds = int(report.get("rounds", 1))
    gpu = any("gpu_peak_mib" in r for r in results.values())
    overhead = any("overhead" in r for r in results.values())
    width = max([20, *(len(str(r.get("label", key))) + 2 for key, r in results.items())])
    lines = [
        f"model {report['model']} ({report['variant']} x{report['scale']}); input {report['input']}; "
        f"{report['warmup']} warm-up + {report['frames']} timed frames; {report['threads']} threads"
        + (f"; {rounds} rounds, a fresh process each: fps of the best round, then the median" if rounds > 1 else ""),
        f"{'contender':<{width}}{'fps':>9}"
        + (f"{'median':>9}" if rounds > 1 else "")
        + f"{'ms/frame':>10}{'peak MiB':>10}{'setup s':>9}"
        + (f"{'GPU MiB':>9}" if gpu else "")
        + (f"{'overhead':>10}" if overhead else ""),
    ]
    for key, r in results.items():
        if "fps" in r:
            line = f"{r['label']:<{width}}{r['fps']:>9.3f}"
            if rounds > 1:
                line += f"{r.get('fps_median', r['fps']):>9.3f}"
            line += f"{r['ms_per_frame']:>10.1f}{r['peak_mib']:>10.0f}{r['setup_s']:>9.2f}"
            if gpu:
                line += f"{r['gpu_peak_mib']:>9.0f}" if "gpu_peak_mib" in r else f"{'-':>9}"
            if overhead:
                line += f"{r['overhead']:>10.1%}" if "overhead" in r else f"{'':>10}"
            lines.append(line.rstrip())
        else:
            status = "skipped" if "skipped" in r else "failed"
            lines.append(f"{key:<{width}}  {status}: {r.get('skipped') or r['error']}")
    if report.get("bars"):
        lines.append("ours / vs-mlrt, mode for mode (best round; median round):")
        for name, bar in report["bars"].items():
            lines.append(f"  {name}: {bar['best']:.2f}x; {bar['median']:.2f}x ({bar['ours']} / {bar['peer']})")
    return "\n".join(lines)
