"""Size, compute and CPU speed figures for the ParagonSR family, unfused vs fused.

Measures:

1. For every variant at x2 and x4: parameter count and convolution MACs per
   low-resolution (input) pixel, for the training form (multi-branch RepConv2d)
   and the fused inference form (plain nn.Conv2d). MACs are counted with forward
   hooks on every nn.Conv2d on a 1x3x32x32 input (on the meta device: shapes only,
   no arithmetic). Elementwise ops (GELU, adds, multiplies, layer scale, pixel
   shuffle, the nearest-neighbour skip) are not counted.
2. Fused-vs-unfused inference speed on this CPU (x2, 1x3x480x640 float32) in
   PyTorch (no_grad; unfused = training form in train mode, fused = models.fuse)
   and in ONNX Runtime (CPUExecutionProvider, ORT_ENABLE_ALL). One warm-up run
   each, then the timed runs interleaved fused/unfused; the median is reported.

Run from the repository root::

    .venv/bin/python benchmarks/arch_figures.py

Options: --variants tiny,s  --runs N  --threads N  --skip-size  --skip-speed  --json PATH
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from vsparagon import models
from vsparagon.errors import ConfigError
from vsparagon.export import export_onnx

SIZE_SCALES = (2, 4)
SPEED_SCALE = 2
MAC_INPUT = (1, 3, 32, 32)
SPEED_INPUT = (1, 3, 480, 640)
DEFAULT_RUNS = {"paragonsr_tiny": 3, "paragonsr_s": 2}


def progress(message: str) -> None:
    """A progress line on stderr, so stdout holds only the tables."""
    print(message, file=sys.stderr, flush=True)


def short(name: str) -> str:
    """``paragonsr_tiny`` -> ``tiny``."""
    return name.removeprefix("paragonsr_")


def count_params(model: nn.Module) -> int:
    """Number of parameter elements."""
    return sum(p.numel() for p in model.parameters())


def macs_per_pixel(model: nn.Module) -> float:
    """Conv MACs per input pixel, via hooks on every nn.Conv2d (the model must run its convs as modules).

    Runs on the meta device (shapes only, no arithmetic); ``model`` is moved there.
    """
    total = 0

    def hook(conv: nn.Module, _inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(conv, nn.Conv2d)
        kh, kw = conv.kernel_size
        total += out.numel() * (conv.in_channels // conv.groups) * kh * kw

    model.to("meta")
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model(torch.empty(MAC_INPUT, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return total / (MAC_INPUT[2] * MAC_INPUT[3])


def size_figures(name: str, scale: int) -> dict[str, float]:
    """Params and MACs/pixel of one variant, unfused (train mode) and fused."""
    progress(f"size: {short(name)} x{scale}")
    model = models.create(name, scale=scale).train()  # eval() would make RepConv2d skip its branch convs
    fused = models.fuse(model)  # fused from real weights, before macs_per_pixel moves them to meta
    return {
        "params_unfused": count_params(model),
        "params_fused": count_params(fused),
        "macs_per_px_unfused": macs_per_pixel(model),
        "macs_per_px_fused": macs_per_pixel(fused),
    }


def print_size_table(rows: list[dict]) -> None:
    """Print the size/compute table."""
    print("\n== Size and compute (conv MACs only; GELU, adds, multiplies, pixel shuffle not counted) ==")
    head = f"{'variant':<8}{'scale':>6}{'params unfused':>16}{'params fused':>14}{'ratio':>7}"
    head += f"{'MACs/px unfused':>17}{'MACs/px fused':>15}{'ratio':>7}"
    print(head)
    for r in rows:
        line = f"{short(r['variant']):<8}{'x' + str(r['scale']):>6}"
        line += f"{r['params_unfused']:>16,}{r['params_fused']:>14,}{r['params_fused'] / r['params_unfused']:>7.3f}"
        line += f"{r['macs_per_px_unfused']:>17,.0f}{r['macs_per_px_fused']:>15,.0f}"
        line += f"{r['macs_per_px_fused'] / r['macs_per_px_unfused']:>7.3f}"
        print(line)


def time_interleaved(fused: Callable[[], object], unfused: Callable[[], object], runs: int) -> tuple[list, list]:
    """Warm up each once, then time ``runs`` runs of each, alternating fused/unfused (seconds)."""
    fused()
    unfused()
    t_fused, t_unfused = [], []
    for _ in range(runs):
        for fn, sink in ((fused, t_fused), (unfused, t_unfused)):
            start = time.perf_counter()
            fn()
            sink.append(time.perf_counter() - start)
    return t_fused, t_unfused


def ort_session(path: Path, threads: int) -> ort.InferenceSession:
    """A CPU session with full graph optimization and ``threads`` intra-op threads."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def speed_figures(name: str, runs: int, threads: int) -> list[dict]:
    """PyTorch and ONNX Runtime timings of one variant, fused vs unfused."""
    model = models.create(name, scale=SPEED_SCALE).train()
    fused = models.fuse(model)
    x = torch.rand(SPEED_INPUT, generator=torch.Generator().manual_seed(0))

    def torch_run(m: nn.Module) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad():
                return m(x)

        return run

    progress(f"speed: {short(name)} pytorch, {runs} runs")
    results = [summarize(name, "pytorch", runs, *time_interleaved(torch_run(fused), torch_run(model), runs))]
    feed = {"input": x.numpy().astype(np.float32)}
    with tempfile.TemporaryDirectory() as tmp:
        sessions = {}
        for form, is_fused in (("fused", True), ("unfused", False)):
            path = Path(tmp) / f"{short(name)}_{form}.onnx"
            export_onnx(model, path, fused=is_fused, verify=False)
            sessions[form] = ort_session(path, threads)
        progress(f"speed: {short(name)} onnxruntime, {runs} runs")
        times = time_interleaved(
            lambda: sessions["fused"].run(None, feed), lambda: sessions["unfused"].run(None, feed), runs
        )
    results.append(summarize(name, "onnxruntime", runs, *times))
    return results


def summarize(name: str, backend: str, runs: int, t_fused: list, t_unfused: list) -> dict:
    """Median ms/frame, fps and speedup for one backend."""
    ms_f = statistics.median(t_fused) * 1e3
    ms_u = statistics.median(t_unfused) * 1e3
    return {
        "variant": name,
        "backend": backend,
        "runs": runs,
        "ms_unfused": ms_u,
        "ms_fused": ms_f,
        "fps_unfused": 1e3 / ms_u,
        "fps_fused": 1e3 / ms_f,
        "speedup": ms_u / ms_f,
        "times_ms_unfused": [t * 1e3 for t in t_unfused],
        "times_ms_fused": [t * 1e3 for t in t_fused],
    }


def print_speed_table(rows: list[dict]) -> None:
    """Print the speed table."""
    shape = "x".join(map(str, SPEED_INPUT))
    print(f"\n== CPU speed, x{SPEED_SCALE}, input {shape} float32, median of interleaved runs after 1 warm-up ==")
    head = f"{'variant':<8}{'backend':<13}{'runs':>5}{'unfused ms':>12}{'fused ms':>10}"
    head += f"{'unfused fps':>13}{'fused fps':>11}{'speedup':>9}"
    print(head)
    for r in rows:
        line = f"{short(r['variant']):<8}{r['backend']:<13}{r['runs']:>5}{r['ms_unfused']:>12.1f}{r['ms_fused']:>10.1f}"
        line += f"{r['fps_unfused']:>13.3f}{r['fps_fused']:>11.3f}{r['speedup']:>8.2f}x"
        print(line)
    print("pytorch: no_grad; unfused = training form in train mode, fused = models.fuse (eval)")
    print("onnxruntime: CPUExecutionProvider, ORT_ENABLE_ALL, exported with export_onnx(fused=True|False)")
    print("individual timed runs (ms):")
    for r in rows:
        unfused = ", ".join(f"{t:.0f}" for t in r["times_ms_unfused"])
        fused = ", ".join(f"{t:.0f}" for t in r["times_ms_fused"])
        print(f"  {short(r['variant'])} {r['backend']}: unfused [{unfused}]  fused [{fused}]")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="tiny,s", help="variants for the speed test (comma-separated)")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per form (default: 3 tiny, 2 others)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads for torch and ORT")
    parser.add_argument("--skip-size", action="store_true", help="skip the params/MACs table")
    parser.add_argument("--skip-speed", action="store_true", help="skip the speed test")
    parser.add_argument("--json", type=Path, default=None, help="also write all numbers to this JSON file")
    args = parser.parse_args(argv)
    if args.threads < 1 or (args.runs is not None and args.runs < 1):
        parser.error("--threads and --runs must be at least 1")
    try:
        args.variants = [models.canonical_variant(v) for v in args.variants.split(",") if v.strip()]
    except ConfigError as exc:
        parser.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> None:
    """Measure and print everything requested on the command line."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    today = datetime.date.today().isoformat()
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, {args.threads} CPU threads, {today}")
    report: dict = {"torch": torch.__version__, "onnxruntime": ort.__version__, "threads": args.threads}
    report["date"] = today
    if not args.skip_size:
        sizes = [{"variant": v, "scale": s, **size_figures(v, s)} for v in models.variant_names() for s in SIZE_SCALES]
        print_size_table(sizes)
        report["size"] = sizes
    if not args.skip_speed:
        speeds = []
        for name in args.variants:
            runs = args.runs if args.runs is not None else DEFAULT_RUNS.get(name, 2)
            speeds += speed_figures(name, runs, args.threads)
        print_speed_table(speeds)
        report["speed"] = speeds
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
