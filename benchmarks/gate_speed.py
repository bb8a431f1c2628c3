"""Speed of the ParagonSR block designs (FFN gates) on the CPU backends, fp32 and half precision.

    .venv/bin/python benchmarks/gate_speed.py [--variant tiny] [--size 640x480] [--rounds 3]

Each design is exported untrained (the speed does not depend on the weights) and run through
vsparagon's own backends (ONNX Runtime with the CPU graph rewrite; OpenVINO), interleaved round
by round so that a slower machine phase hits every design alike. Prints the median ms per
frame and the ratio to today's ``gelu`` design. OpenVINO's half precision is what the CPU runs
natively (bf16 on AVX-512 BF16 / AMX, else f16 or f32: OpenVINO decides).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from vsparagon import models
from vsparagon.export import export_onnx
from vsparagon.models.paragonsr.arch import GATES
from vsparagon.runtime.backends import make_backend
from vsparagon.runtime.source import open_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="tiny")
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=3, help="frames timed per round")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    folder = Path(tempfile.mkdtemp(prefix="gate-speed-"))
    x = np.random.default_rng(0).random((1, 3, height, width), dtype=np.float32)
    sessions = {}
    for gate in GATES:
        path = folder / f"{gate}.onnx"
        export_onnx(models.create(args.variant, scale=2, gate=gate), path, verify=False)
        source = open_model(path)
        for backend in ("ort-cpu", "openvino"):
            for fp16 in (False, True):
                session = make_backend(backend, fp16=fp16).open(source)
                session.run(x)  # warm-up
                sessions[(gate, backend, fp16)] = session
    times: dict[tuple[str, str, bool], list[float]] = {key: [] for key in sessions}
    for _ in range(args.rounds):
        for key, session in sessions.items():
            start = time.perf_counter()
            for _ in range(args.frames):
                session.run(x)
            times[key].append((time.perf_counter() - start) / args.frames * 1000)
    rounds = f"median of {args.rounds} interleaved rounds of {args.frames} frames each"
    print(f"{args.variant} x2, {width}x{height} RGB, {rounds}")
    print("| backend | precision | " + " | ".join(GATES) + " |")
    print("|---|---|" + "---:|" * len(GATES))
    for backend in ("ort-cpu", "openvino"):
        for fp16 in (False, True):
            base = statistics.median(times[("gelu", backend, fp16)])
            cells = []
            for gate in GATES:
                ms = statistics.median(times[(gate, backend, fp16)])
                cells.append(f"{ms:.0f} ms ({base / ms:.2f}x)")
            print(f"| {backend} | {'half' if fp16 else 'fp32'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
