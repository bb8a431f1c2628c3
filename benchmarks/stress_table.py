"""Largest |output| of models on the stress patterns, fp32 and fp16 ONNX, ONNX Runtime on the CPU.

    .venv/bin/python benchmarks/stress_table.py                     # every shipped model
    .venv/bin/python benchmarks/stress_table.py runs/x/m.onnx ...   # any of ours or foreign ONNX files

Prints a Markdown table (the one in models/README.md). The photo is a 96x96 crop of
data/val/astronaut.png when present (fetch_data.py), else a generated picture; each pattern is
96x96, in [0, 1]. ``inf/NaN`` marks output that is not finite. The bar: finite and <= 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from vsparagon.catalogue import shipped_models
from vsparagon.export.stress import PATTERNS, STRESS_BOUND, stress_inputs, worst

ROOT = Path(__file__).resolve().parents[1]


def photo(size: int = 96) -> tuple[np.ndarray, str]:
    path = ROOT / "data" / "val" / "astronaut.png"
    if path.is_file():
        from PIL import Image

        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))[64 : 64 + size, 160 : 160 + size]
        return rgb.transpose(2, 0, 1).astype(np.float32) / 255, f"{path.relative_to(ROOT)} crop"
    from vsparagon.train.data import synthetic_picture

    return synthetic_picture(11, size).transpose(2, 0, 1).astype(np.float32) / 255, "generated picture"


def run(path: Path, inputs: dict[str, np.ndarray]) -> dict[str, float]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0]
    dtype = np.float16 if feed.type == "tensor(float16)" else np.float32
    return {name: worst(session.run(None, {feed.name: x.astype(dtype)})[0]) for name, x in inputs.items()}


def cell(value: float) -> str:
    return "inf/NaN" if not np.isfinite(value) else f"{value:.3g}" + ("" if value <= STRESS_BOUND else " **")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path, help="ONNX files (default: every shipped model, fp32 and fp16)")
    args = parser.parse_args()
    files = args.models or [
        p for path in shipped_models().values() for p in (path, path.with_name(f"{path.stem}_fp16.onnx")) if p.is_file()
    ]
    picture, where = photo()
    inputs = stress_inputs(picture)
    print(f"Largest |output| (ONNX Runtime CPU, 96x96 inputs; photo: {where}); ** = over {STRESS_BOUND:g}\n")
    print("| model | " + " | ".join(PATTERNS) + " | passes |")
    print("|---|" + "---:|" * len(PATTERNS) + "---|")
    failed = 0
    for path in files:
        results = run(path, inputs)
        ok = all(np.isfinite(v) and v <= STRESS_BOUND for v in results.values())
        failed += not ok
        print(f"| {path.stem} | " + " | ".join(cell(results[k]) for k in PATTERNS) + f" | {'yes' if ok else 'no'} |")
    print(f"\n{len(files) - failed} of {len(files)} pass.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
