"""``backend="openvino"`` beside vs-mlrt's OpenVINO: the C API on vs-mlrt's build against the Python bindings.

Needs vs-mlrt's OpenVINO plugin (``pip install vapoursynth-mlrt-ov``). Each round runs one
child process per mode, in alternating order:

* ``c-api``: the VapourSynth core first, so vs-mlrt's plugin loads its OpenVINO before
  anything else (vspipe does this before a script's first line); the ``openvino`` Python
  module then refuses that build and vsparagon runs on it through OpenVINO's C API;
* ``python``: ``import vsparagon.plugin`` first, so the ``openvino`` package's build loads
  first (vs-mlrt's plugin then binds to it too) and vsparagon uses the Python bindings.

A child upscales a 640x480 clip (RGBS, or with ``--format rgb24`` an 8-bit one, which runs the
default precision: bf16 on a CPU with native bf16) with the shipped tiny x2 model on
``backend="openvino"``, renders one warm-up frame per frame in flight, times ``--frames`` more
through ``clip.frames()`` (``--threads`` frames in flight), and reports fps, the OpenVINO library
in memory and a hash of the frames (the two modes must print the same hash)::

    .venv/bin/python benchmarks/beside_mlrt.py [--frames 6] [--rounds 3] [--threads 2] [--format rgb24]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import time

MODES = ("c-api", "python")


def child(mode: str, frames: int, threads: int, fmt: str) -> dict[str, object]:
    """Measure one mode in this (fresh) process."""
    if mode == "python":
        import vsparagon.plugin  # the openvino package's build before the core
    import vapoursynth as vs

    core = vs.core
    core.num_threads = threads  # creates the core: every autoloaded plugin loads, vs-mlrt's and its OpenVINO too
    import vsparagon.plugin  # noqa: F401  (core.paragon for an editable install)

    colors = [[(i * 0.37 + c * 0.29) % 1.0 for c in range(3)] for i in range(16)]
    tiles = [core.std.BlankClip(width=80, height=60, format=vs.RGBS, length=frames + threads, color=c) for c in colors]
    rows = [core.std.StackHorizontal(tiles[r * 4 : r * 4 + 4]) for r in range(4)]
    clip = core.std.StackVertical(rows).resize.Bicubic(640, 480)
    if fmt == "rgb24":
        clip = clip.resize.Point(format=vs.RGB24)
    upscaled = core.paragon.Upscale(clip, variant="tiny", backend="openvino")
    # Warm up one frame per frame in flight: each OpenVINO stream builds its kernels on its first frame.
    warm = [frame.props["ParagonPrecision"] for frame in upscaled[:threads].frames()]
    precision = warm[0]
    digest = hashlib.sha256()
    start = time.perf_counter()
    for frame in upscaled[threads:].frames():
        for plane in range(frame.format.num_planes):
            digest.update(bytes(frame[plane]))
    seconds = time.perf_counter() - start
    with open("/proc/self/maps") as maps:
        runtime = next((line.split()[-1] for line in maps if "/libopenvino.so." in line), "none")
    return {
        "mode": mode,
        "fps": frames / seconds,
        "runtime": runtime,
        "sha256": digest.hexdigest()[:16],
        "precision": precision.decode() if isinstance(precision, bytes) else str(precision),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="core.num_threads")
    parser.add_argument("--format", choices=("rgbs", "rgb24"), default="rgbs", help="the source clip's format")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.frames, args.threads, args.format)))
        return
    results: dict[str, list[dict[str, object]]] = {mode: [] for mode in MODES}
    for r in range(args.rounds):
        for mode in MODES if r % 2 == 0 else MODES[::-1]:
            command = [sys.executable, __file__, "--child", mode, "--frames", str(args.frames)]
            command += ["--threads", str(args.threads), "--format", args.format]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"{mode} failed:\n{done.stderr[-2000:]}")
            results[mode].append(json.loads(done.stdout.splitlines()[-1]))
    for mode, runs in results.items():
        fps = [float(str(run["fps"])) for run in runs]
        print(f"{mode:>6}: median {statistics.median(fps):.3f} fps, best {max(fps):.3f} ({len(fps)} rounds)")
        print(f"        OpenVINO in memory: {runs[0]['runtime']}; frames sha256 {runs[0]['sha256']}")
        print(f"        ParagonPrecision {runs[0]['precision']}; rounds {' '.join(f'{v:.3f}' for v in fps)} fps")
    capi, python = ([float(str(run["fps"])) for run in results[mode]] for mode in MODES)
    pairs = " ".join(f"{c / p:.2f}" for c, p in zip(capi, python, strict=True))
    print(
        f"c-api / python: medians {statistics.median(capi) / statistics.median(python):.2f}x, "
        f"best rounds {max(capi) / max(python):.2f}x; round by round {pairs}"
    )
    hashes = {str(run["sha256"]) for runs in results.values() for run in runs}
    print("same frames in both modes" if len(hashes) == 1 else f"FRAMES DIFFER: {sorted(hashes)}")


if __name__ == "__main__":
    main()
