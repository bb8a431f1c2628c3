"""Streams and graph rewrite per CPU backend and precision: the measurements behind ``auto_streams`` and the rewrite.

For each backend (ONNX Runtime, OpenVINO) and precision (fp32; OpenVINO's native bf16/fp16
where the CPU has it), with the CPU graph rewrite on and off, and 1 or 2 streams sharing all
threads, the session runs ``--frames`` 640x480 frames of tiny x2, ``streams`` at once, as the
plugin feeds it. Rounds alternate the order; the best round is reported, with the ratio to the
configuration the plugin uses today on this machine.

Run from the repository root::

    .venv/bin/python benchmarks/tuning.py [--frames 6] [--rounds 2]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import threading
import time

import numpy as np

from vsparagon.runtime.backends import make_backend
from vsparagon.runtime.graph_rewrite import ENV_SWITCH
from vsparagon.runtime.policy import auto_streams
from vsparagon.runtime.precision import describe_cpu, native_reduced
from vsparagon.runtime.source import resolve


def fps(session, x: np.ndarray, frames: int, streams: int) -> float:
    def work(first: int) -> None:
        for _ in range(first, frames, streams):
            session.run(x)

    start = time.perf_counter()
    workers = [threading.Thread(target=work, args=(i,)) for i in range(streams)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return frames / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    source = resolve(variant="tiny", scale=2, model=None)
    x = np.random.default_rng(0).random((1, 3, 480, 640), dtype=np.float32)
    modes = [("ort-cpu", False), ("openvino", False)] + ([("openvino", True)] if native_reduced() else [])
    configs = list(itertools.product(modes, (True, False), sorted({1, 2, cpus})))
    sessions = {}
    for (backend, reduced), rewrite, streams in configs:
        os.environ[ENV_SWITCH] = "1" if rewrite else "0"
        session = make_backend(backend, fp16=reduced, streams=streams).open(source)
        session.run(x)  # compile, warm up
        sessions[(backend, reduced, rewrite, streams)] = session
        print(f"ready {backend} {session.precision} rewrite={rewrite} streams={streams}", file=sys.stderr, flush=True)
    best: dict[tuple, float] = {}
    for r in range(args.rounds):
        order = list(sessions) if r % 2 == 0 else list(reversed(sessions))
        for key in order:
            streams = key[3]
            best[key] = max(best.get(key, 0.0), fps(sessions[key], x, args.frames, streams))
    today = auto_streams(0, cpus)
    print(f"CPU {describe_cpu()}, {cpus} threads; plugin today: {today} streams, rewrite on")
    print("| backend | precision | rewrite | streams | fps | vs today's config |")
    print("|---|---|---|---:|---:|---:|")
    for key, value in best.items():
        backend, reduced, rewrite, streams = key
        base = best[(backend, reduced, True, today)]
        precision = sessions[key].precision
        switch = "on" if rewrite else "off"
        print(f"| {backend} | {precision} | {switch} | {streams} | {value:.3f} | {value / base:.2f}x |")


if __name__ == "__main__":
    main()
