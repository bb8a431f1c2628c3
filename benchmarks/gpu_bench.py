"""The GPU performance table of issue 14, in one script: every GPU backend, the bare loop, overhead, GPU memory.

For each model (``tiny`` x2: the shipped one; ``s`` x2: an untrained one of the same size,
exported once into the cache), on a 1920x1080 RGBS clip upscaled to 3840x2160 at each
backend's default precision (fp16 on a GPU for our fp16-safe models), it measures:

1. ``core.paragon.Upscale`` into ``clip.frames()`` (frames in flight, like vspipe) on
   ``trt``, ``ort-trt``, ``ort-cuda`` and ``torch`` on CUDA;
2. the same backend's session alone in a loop on the same frame (no VapourSynth), and the
   plugin's overhead against it: 1 - plugin fps / bare fps;
3. vs-mlrt's ``core.trt`` and ``core.ort`` (CUDA) on the same ONNX, when installed (tiny only);
4. peak GPU memory: the rise of memory in use on GPU 0 while the row ran (NVML; every
   process on the GPU counts, so run it on an otherwise idle GPU), and the host's peak RSS.

Each row runs in its own process. A row that cannot run here (no GPU, no TensorRT, no
onnxruntime-gpu, no CUDA build of PyTorch, vs-mlrt not installed) is listed as skipped with
the reason, so on a CPU-only machine the script runs and reports every row skipped.
Targets (the issue's): tiny x2 >= 60 fps, s x2 >= 24 fps, overhead <= 10%.

Run from the repository root::

    .venv/bin/python benchmarks/gpu_bench.py [--frames 60] [--size 1920x1080] [--variants tiny,s] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from vsparagon._files import cache_dir
from vsparagon.bench.rows import GPU_OURS, GPU_PEERS, add_overheads, measure_in_child, skip_reason
from vsparagon.cli.bench_cmd import parse_size
from vsparagon.runtime import gpu_info

ROOT = Path(__file__).resolve().parents[1]
#: Frame rate each model should reach (the issue's targets) and the largest acceptable plugin overhead.
TARGET_FPS = {"tiny": 60.0, "s": 24.0}
MAX_OVERHEAD = 0.10


def model_files(variant: str, *, make: bool) -> Path:
    """The ONNX of ``variant`` x2 with its checkpoint beside it: shipped (tiny) or an untrained export (others).

    ``make=False`` (no GPU row can run): the path only, nothing built.
    """
    shipped = ROOT / "models" / f"paragonsr_{variant}_x2.onnx"
    if shipped.is_file() and shipped.with_suffix(".safetensors").is_file():
        return shipped
    target = cache_dir() / "bench" / f"random_{variant}_x2.onnx"
    if make and not (target.is_file() and target.with_suffix(".safetensors").is_file()):
        import torch

        from vsparagon import models
        from vsparagon.export import export_onnx

        print(f"gpu_bench: exporting an untrained {variant} x2 to {target}", file=sys.stderr, flush=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        model = models.create(variant, scale=2)
        models.save(model, target.with_suffix(".safetensors"))
        export_onnx(model, target)
    return target


def rows_for(variant: str, *, peers: bool) -> list[str]:
    """Each of our GPU rows followed by its bare loop; vs-mlrt's GPU rows for tiny."""
    keys = [row for key in GPU_OURS for row in (key, key.replace("ours-", "bare-", 1))]
    return keys + (list(GPU_PEERS) if peers and variant == "tiny" else [])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--size", default="1920x1080", help="input frame size WxH (default 1920x1080)")
    parser.add_argument("--frames", type=int, default=60, help="timed frames per row (default 60)")
    parser.add_argument("--warmup", type=int, default=4, help="untimed frames first (default 4)")
    parser.add_argument("--variants", default="tiny,s", help="comma-separated x2 models (default tiny,s)")
    parser.add_argument("--no-peers", action="store_true", help="skip vs-mlrt's GPU plugins")
    parser.add_argument("--row-timeout", type=float, default=600, help="seconds before a row is stopped (600)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    width, height = parse_size(args.size)
    report = gpu_info.gpu_report()
    runnable = bool(report.gpus)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
        model = model_files(variant, make=runnable)
        rows: dict[str, dict[str, Any]] = {}
        for key in rows_for(variant, peers=not args.no_peers):
            reason = skip_reason(key, str(model))
            if reason is not None:  # known without starting a process
                rows[key] = {"skipped": reason}
                continue
            print(f"gpu_bench: {variant} {key} ...", file=sys.stderr, flush=True)
            config = {"key": key, "model": str(model), "width": width, "height": height}
            config |= {"warmup": args.warmup, "frames": args.frames, "threads": 0}
            rows[key] = measure_in_child(config, timeout=args.row_timeout)
        add_overheads(rows)
        results[variant] = rows
    summary = {
        "gpus": [gpu.describe() for gpu in report.gpus] or f"none: {report.problem}",
        "driver": report.driver,
        "cuda (driver)": report.cuda,
        "torch cuda build": gpu_info.torch_cuda_build(),
        "python": platform.python_version(),
        "input": f"{width}x{height} RGBS -> {2 * width}x{2 * height}",
        "warmup": args.warmup,
        "frames": args.frames,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "results": results,
    }
    print(render(summary))
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


def render(summary: dict[str, Any]) -> str:
    """The table, one block per model; a verdict on each target where a row was measured."""
    gpus = summary["gpus"]
    lines = [
        f"GPU: {', '.join(gpus) if isinstance(gpus, list) else gpus}",
        f"driver {summary['driver'] or 'unknown'}, CUDA (driver) {summary['cuda (driver)'] or 'unknown'}, "
        f"PyTorch CUDA build {summary['torch cuda build'] or 'none'}; input {summary['input']}; "
        f"{summary['warmup']} warm-up + {summary['frames']} timed frames per row; {summary['date']}",
    ]
    header = (
        f"{'row':<22}{'fps':>9}{'ms/frame':>10}{'GPU MiB':>9}{'host MiB':>10}{'overhead':>10}  {'precision':<10}target"
    )
    for variant, rows in summary["results"].items():
        lines += ["", f"{variant} x2", header]
        for key, r in rows.items():
            if "fps" not in r:
                lines.append(f"{key:<22}{'skipped' if 'skipped' in r else 'failed'}: {r.get('skipped') or r['error']}")
                continue
            gpu = f"{r['gpu_peak_mib']:.0f}" if "gpu_peak_mib" in r else "-"
            overhead = f"{r['overhead']:.1%}" if "overhead" in r else ""
            lines.append(
                f"{r['label']:<22}{r['fps']:>9.2f}{r['ms_per_frame']:>10.2f}{gpu:>9}{r['peak_mib']:>10.0f}"
                f"{overhead:>10}  {r.get('precision', ''):<10}{_verdict(variant, key, r)}"
            )
    return "\n".join(lines)


def _verdict(variant: str, key: str, r: dict[str, Any]) -> str:
    """``>= 60 fps: met`` / ``missed`` for our rows, and the overhead target where measured."""
    if not key.startswith("ours-") or variant not in TARGET_FPS:
        return ""
    target = TARGET_FPS[variant]
    parts = [f">= {target:.0f} fps: {'met' if r['fps'] >= target else 'missed'}"]
    if "overhead" in r:
        parts.append(f"overhead <= {MAX_OVERHEAD:.0%}: {'met' if r['overhead'] <= MAX_OVERHEAD else 'missed'}")
    return "; ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
