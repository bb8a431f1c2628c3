"""How far each reduced precision lands from fp32, per output bit depth, on real photos; and what it buys.

For every shipped model and every reduced mode a CPU backend offers (OpenVINO with its
half-precision hint, which OpenVINO runs as bf16 on a CPU with AVX-512 BF16 or AMX and as
fp16 on one with AVX-512 FP16 / AMX-FP16; ONNX Runtime on the fp16 graph), each photo
runs once in fp32 and once reduced, and the outputs are compared as a clip of each bit
depth would store them: the largest difference in code values, and the share of samples
that differ. The rule ``fp16=None`` follows (``vsparagon.runtime.precision``) is written
from this table. Timing: the best of ``--rounds`` runs of each session on one 640x480
frame (x4 models: 320x240), all threads.

Run from the repository root, after ``python examples/train/fetch_data.py data --only heldout``::

    .venv/bin/python benchmarks/precision.py [--photos data/heldout] [--rounds 3] [--json out.json]
        [--only tiny_x2,tiny_x4] [--model release/paragonsr_tiny_x2.onnx]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from vsparagon.catalogue.files import read_onnx
from vsparagon.runtime.backends import make_backend
from vsparagon.runtime.precision import describe_cpu, native_reduced
from vsparagon.runtime.source import resolve

ROOT = Path(__file__).resolve().parents[1]
MODELS = (("tiny", 2), ("tiny", 4), ("tiny_video", 2))
MODES = (("openvino", True), ("ort-cpu", True))
DEPTHS = (8, 10, 12, 16)


def photos(folder: Path, width: int, height: int) -> list[np.ndarray]:
    """(3, H, W) float32 crops of every photo, scaled so the crop covers most of it."""
    found = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"}):
        image = Image.open(path).convert("RGB")
        ratio = max(width / image.width, height / image.height)
        image = image.resize((round(image.width * ratio), round(image.height * ratio)), Image.Resampling.BICUBIC)
        left, top = (image.width - width) // 2, (image.height - height) // 2
        crop = np.asarray(image.crop((left, top, left + width, top + height)), dtype=np.float32) / 255
        found.append(np.ascontiguousarray(crop.transpose(2, 0, 1)))
    if not found:
        sys.exit(f"no photos in {folder}: run python examples/train/fetch_data.py data --only heldout")
    return found


def codes(x: np.ndarray, bits: int) -> np.ndarray:
    """What a clip of ``bits`` integer depth stores for values ``x`` (full range, clamped, rounded)."""
    top = (1 << bits) - 1
    return np.rint(np.clip(x, 0.0, 1.0) * top).astype(np.int64)


def luma_psnr(a: np.ndarray, b: np.ndarray) -> float:
    weights = np.array([0.2126, 0.7152, 0.0722], dtype=np.float64)[:, None, None]
    mse = float(np.mean((np.sum(np.clip(a, 0, 1) * weights, 0) - np.sum(np.clip(b, 0, 1) * weights, 0)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def best_time(session, x: np.ndarray, rounds: int) -> float:
    session.run(x)  # compile and warm up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        session.run(x)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, default=ROOT / "data" / "heldout")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", help="comma-separated models, e.g. tiny_x2,tiny_x4 (default: every shipped one)")
    parser.add_argument("--model", type=Path, help="measure this fp32 ONNX of ours instead (an unshipped release)")
    args = parser.parse_args()
    print(f"CPU: {describe_cpu()}", file=sys.stderr)
    modes = [backend for backend, _ in MODES if backend != "openvino" or native_reduced() is not None]
    if "openvino" not in modes:
        print("skipping OpenVINO: no native bf16/fp16 here, it runs fp32 only (fp16=True is refused)", file=sys.stderr)
    rows = []
    wanted = [(v, s) for v, s in MODELS if not args.only or f"{v}_x{s}" in args.only.split(",")]
    if args.model is not None:
        found = read_onnx(args.model).descriptor
        if found is None:
            parser.error(f"{args.model}: not one of our ONNX files (no descriptor)")
        wanted = [(found.variant, found.scale)]
    for variant, scale in wanted:
        source = resolve(variant=variant, scale=scale, model=None if args.model is None else str(args.model))
        width, height = (640, 480) if scale == 2 else (320, 240)
        images = photos(args.photos, width, height)
        for backend in modes:
            exact = make_backend(backend, fp16=False).open(source)
            reduced = make_backend(backend, fp16=True).open(source)
            ref = [exact.run(x[None])[0] for x in images]
            got = [reduced.run(x[None])[0] for x in images]
            row = {
                "model": f"{variant} x{scale}" + ("" if args.model is None else f" ({args.model.name})"),
                "backend": backend,
                "precision": reduced.precision,
                "fp32 fps": round(1 / best_time(exact, images[0][None], args.rounds), 3),
                "reduced fps": round(1 / best_time(reduced, images[0][None], args.rounds), 3),
                "finite": bool(all(np.isfinite(g).all() for g in got)),
                "max |diff|": float(max(np.abs(g - r).max() for g, r in zip(got, ref, strict=True))),
                "Y-PSNR vs fp32": round(min(luma_psnr(g, r) for g, r in zip(got, ref, strict=True)), 2),
            }
            for bits in DEPTHS:
                diffs = np.concatenate(
                    [np.abs(codes(g, bits) - codes(r, bits)).ravel() for g, r in zip(got, ref, strict=True)]
                )
                row[f"{bits}-bit max"] = int(diffs.max())
                row[f"{bits}-bit p99.9"] = float(np.percentile(diffs, 99.9))
                row[f"{bits}-bit differ %"] = round(100 * float(np.mean(diffs > 0)), 2)
            rows.append(row)
            print(f"{row['model']} {backend}: done", file=sys.stderr, flush=True)
    heads = ["model", "backend", "precision", "fp32 fps", "reduced fps", "Y-PSNR vs fp32", "max |diff|"]
    heads += [f"{b}-bit {k}" for b in DEPTHS for k in ("max", "p99.9")]
    print(f"{len(images)} photos ({args.photos}); Y-PSNR: the worst photo; code differences: all samples")
    print("| " + " | ".join(heads) + " |")
    print("|" + "---|" * len(heads))
    for row in rows:
        cells = [f"{row[h]:.4g}" if isinstance(row[h], float) else str(row[h]) for h in heads]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps({"cpu": describe_cpu(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
