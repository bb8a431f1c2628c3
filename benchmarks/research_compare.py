"""The research networks (EHR-SR, HERMES) against ParagonSR tiny, with the same data, steps and CPU.

Trains ParagonSR tiny, ``ehrsr_tiny`` and ``hermes_tiny`` at x2 and the ablations of each research
network (no selective scan, no mixture of experts, no frequency branch), each from the same base
config (``--config``, default ``examples/train/tiny_x2.yaml``: its data, losses and optimiser; only
the model, the step count and the warmup change). Then, for each run's released (fused, EMA) model:

- parameters, and multiply-adds per input pixel (``torch.utils.flop_counter`` on a 1x3x64x64 input:
  convolutions, matrix products and attention; elementwise ops and FFTs are not counted);
- frames per second through the plugin's filter (``vsparagon.plugin.upscale``: conversion, tiling
  policy and runtime) on this CPU, a 640x480 YUV420P8 clip, ``--backend`` (openvino by default), fp32;
- Y-PSNR/SSIM (border = scale) on ``--val`` (default ``data/val``) with bicubic LR, and again with
  the LR compressed by ``--codec`` (default ``h264:30``), as ``paragon eval --lr-codec`` does.

Writes ``OUT/<run>_s<steps>/`` (the training run and ``result.json``), ``OUT/results.json`` and
``OUT/results.md`` (one table). Resumable: a run whose ``result.json`` exists is not redone, and a
run stopped part-way continues from its last checkpoint. Run from the repository root::

    .venv/bin/python benchmarks/research_compare.py --out runs/research --steps 2000
    .venv/bin/python benchmarks/research_compare.py --out /tmp/rc --steps 5 --only ehrsr_tiny

An ablation whose switch is not a field of its architecture's config is reported as skipped (the
switch names are :data:`ABLATIONS`; they follow the architectures' configs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, kw_only=True)
class Contender:
    """One trained model of the comparison."""

    name: str
    """Row name, e.g. ``ehrsr_tiny_no_ssm``."""
    variant: str
    """The catalogue variant it trains."""
    options: dict[str, Any] = field(default_factory=dict)
    """``model.options``: the ablation switch (empty for a full network)."""


#: Ablation name -> the config switch that removes the module (the architectures' config fields).
ABLATIONS: dict[str, dict[str, Any]] = {
    "no_ssm": {"use_ssm": False},
    "no_moe": {"use_moe": False},
    "no_freq": {"use_frequency": False},
}
CONTENDERS = [
    Contender(name="paragonsr_tiny", variant="tiny"),
    *(
        Contender(name=f"{base}{suffix}", variant=base, options=options)
        for base in ("ehrsr_tiny", "hermes_tiny")
        for suffix, options in [("", {}), *((f"_{k}", v) for k, v in ABLATIONS.items())]
    ),
]
SCALE = 2
MAC_INPUT = (1, 3, 64, 64)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- training


def missing_switch(contender: Contender) -> str | None:
    """Why ``contender`` cannot be built (an ablation switch its architecture lacks), or None."""
    from vsparagon.catalogue.table import architecture_of
    from vsparagon.models.registry import ENTRIES

    known = {f.name for f in dataclasses.fields(ENTRIES[architecture_of(contender.variant).name].config)}
    absent = sorted(set(contender.options) - known)
    if absent:
        fields = ", ".join(sorted(known))
        return f"{', '.join(absent)} is not a field of the {contender.variant} config (fields: {fields})"
    return None


def train_one(contender: Contender, folder: Path, *, config: Path, steps: int) -> Path:
    """Train (or finish training) ``contender`` in ``folder``; returns its released ONNX file."""
    from vsparagon.train import train
    from vsparagon.train.config import load_config
    from vsparagon.train.state import list_states

    base = load_config(config)
    overrides: dict[str, Any] = {
        "name": f"{contender.name}_x{SCALE}",
        "model.variant": contender.variant,
        "model.scale": SCALE,
        "model.options": contender.options,
        "model.init": None,  # every contender starts from fresh weights
        "train.iters": steps,
        "train.val_every": 0,  # scored below, on the same pictures for every run
        "train.save_every": max(1, steps // 4),
        "optim.warmup": min(base.optim.warmup, max(1, steps // 10)),
        "data.val": [],
        "export.onnx": True,
        "export.fp16": False,
    }
    cfg = load_config(config, overrides)
    run = folder / "train"
    onnx = run / f"{cfg.run_name}.onnx"
    if onnx.is_file():
        return onnx
    resume = bool(list_states(run / "checkpoints"))
    progress(f"{contender.name}: training {steps} steps" + (" (resuming)" if resume else ""))
    result = train(cfg, run, resume=resume)
    if result.onnx is None:
        raise RuntimeError(f"{contender.name}: the run ended without an ONNX release")
    return result.onnx


# ---------------------------------------------------------------- measurements


def size_figures(release: Path) -> dict[str, float]:
    """Parameters and multiply-adds per input pixel of the released (fused) model."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from vsparagon import models

    model = models.load(release, fused=True).eval()
    params = sum(p.numel() for p in model.parameters())
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.rand(MAC_INPUT))
    macs = counter.get_total_flops() / 2
    return {"params": params, "macs_per_px": macs / (MAC_INPUT[2] * MAC_INPUT[3])}


def plugin_fps(onnx: Path, *, backend: str, frames: int, threads: int) -> float:
    """Frames per second of the plugin's filter on a 640x480 YUV420P8 clip (after one warm-up frame).

    The picture is flat: every expert runs on every pixel (dense mixtures), so content does not change the work.
    """
    import vapoursynth as vs

    from vsparagon.plugin import upscale

    clip = vs.core.std.BlankClip(width=640, height=480, format=vs.YUV420P8, length=frames + 1, color=[96, 110, 150])
    out = upscale(clip, model=str(onnx), backend=backend, fp16=False, threads=threads)
    out.get_frame(0)
    start = time.perf_counter()
    for _ in out[1:].frames():
        pass
    return frames / (time.perf_counter() - start)


def quality(onnx: Path, val: Path, *, backend: str, threads: int, codec: tuple[str, float] | None) -> dict[str, float]:
    """Mean Y-PSNR/SSIM of the model and of bicubic on ``val`` (LR optionally compressed with ``codec``)."""
    import numpy as np

    from vsparagon.tools.evaluate import evaluate

    scores = evaluate(str(onnx), val, scale=SCALE, backend=backend, threads=threads, lr_codec=codec)
    return {
        f"{method}_{metric}": float(np.mean([s.scores[method][i] for s in scores]))
        for method in ("model", "bicubic")
        for i, metric in enumerate(("psnr", "ssim"))
    }


def measure(contender: Contender, onnx: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Every figure of one trained contender."""
    progress(f"{contender.name}: size, speed and quality")
    figures: dict[str, Any] = {"name": contender.name, "variant": contender.variant, "options": contender.options}
    figures |= size_figures(onnx.with_suffix(".safetensors"))
    figures["fps"] = plugin_fps(onnx, backend=args.backend, frames=args.frames, threads=args.threads)
    figures["clean"] = quality(onnx, args.val, backend=args.backend, threads=args.threads, codec=None)
    figures["codec"] = quality(onnx, args.val, backend=args.backend, threads=args.threads, codec=args.codec)
    return figures


# ---------------------------------------------------------------- the table


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The markdown table (with the setup above it)."""
    codec = f"{args.codec[0]} CRF {args.codec[1]:g}"
    lines = [
        f"# Research networks vs ParagonSR tiny (x{SCALE}, {args.steps} steps each)",
        "",
        f"- data and objective: `{args.config}` (model, steps and warmup changed only); validation: `{args.val}`",
        f"- machine: {cpu_name()}, {os.cpu_count()} logical CPUs; "
        f"fps: plugin filter, 640x480 YUV420P8, backend {args.backend}, fp32, threads {args.threads or 'all'}",
        "- MACs: multiply-adds per input pixel (convolutions, matrix products, attention; not elementwise ops)",
        f"- PSNR/SSIM: Y channel, border {SCALE}; 'H.264 LR': the LR pictures compressed ({codec}) first",
        "",
        "| model | params | MACs/px | fps | PSNR | SSIM | dPSNR vs ParagonSR | H.264 LR PSNR | H.264 LR SSIM |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    reference = next((r for r in results if r["name"] == "paragonsr_tiny" and "clean" in r), None)
    for r in results:
        if "skipped" in r:
            lines.append(f"| {r['name']} | skipped: {r['skipped']} |||||||| ")
            continue
        delta = f"{r['clean']['model_psnr'] - reference['clean']['model_psnr']:+.3f}" if reference else "n/a"
        lines.append(
            f"| {r['name']} | {r['params']:,} | {r['macs_per_px']:,.0f} | {r['fps']:.2f} | "
            f"{r['clean']['model_psnr']:.3f} | {r['clean']['model_ssim']:.4f} | {delta} | "
            f"{r['codec']['model_psnr']:.3f} | {r['codec']['model_ssim']:.4f} |"
        )
    scored = [r for r in results if "clean" in r]
    if scored:
        clean, coded = scored[0]["clean"], scored[0]["codec"]
        lines.append(
            f"| bicubic | | | | {clean['bicubic_psnr']:.3f} | {clean['bicubic_ssim']:.4f} | | "
            f"{coded['bicubic_psnr']:.3f} | {coded['bicubic_ssim']:.4f} |"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from vsparagon.tools.evaluate import parse_codec

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "research_compare", help="results folder")
    parser.add_argument("--steps", type=int, default=2000, help="training steps of every run (default 2000)")
    names = [c.name for c in CONTENDERS]
    parser.add_argument("--only", action="append", choices=names, metavar="NAME", help=f"repeatable; one of {names}")
    parser.add_argument("--config", type=Path, default=REPO / "examples" / "train" / "tiny_x2.yaml")
    parser.add_argument("--val", type=Path, default=REPO / "data" / "val", help="validation pictures (HR)")
    parser.add_argument("--codec", type=parse_codec, default=("h264", 30.0), help="LR compression, CODEC:CRF")
    parser.add_argument("--backend", default="openvino", choices=["openvino", "ort-cpu"])
    parser.add_argument("--threads", type=int, default=0, help="inference threads (0 = all)")
    parser.add_argument("--frames", type=int, default=5, help="frames timed for fps (after one warm-up)")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    if not args.val.is_dir():
        parser.error(f"--val {args.val}: no such folder (fetch it: python examples/train/fetch_data.py data)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    chosen = [c for c in CONTENDERS if not args.only or c.name in args.only]
    results = []
    for contender in chosen:
        folder = args.out / f"{contender.name}_s{args.steps}"
        done = folder / "result.json"
        if done.is_file():
            progress(f"{contender.name}: done earlier ({done})")
            results.append(json.loads(done.read_text()))
            continue
        why = missing_switch(contender)
        if why is not None:
            progress(f"{contender.name}: skipped ({why})")
            results.append({"name": contender.name, "skipped": why})
            continue
        onnx = train_one(contender, folder, config=args.config, steps=args.steps)
        result = measure(contender, onnx, args) | {"steps": args.steps}
        done.write_text(json.dumps(result, indent=2))
        results.append(result)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    (args.out / "results.md").write_text(table(results, args))
    print(table(results, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
