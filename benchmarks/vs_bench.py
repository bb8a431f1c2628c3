"""Frame rate of ``paragon.Upscale`` on the CPU against vs-mlrt, on one ONNX, clip and thread count.

Measures, in one process (peak memory in a child process, so its number is clean):

1. Frames per second through VapourSynth (``clip.frames()``, which keeps
   ``core.num_threads`` frames in flight, like vspipe) of these filters on the same
   640x480 RGBS clip (x2 -> 1280x960): vsparagon ``backend="ort-cpu"`` and
   ``backend="openvino"`` as a user gets them (the CPU graph rewrite and
   ``auto_streams`` frames at once), vsparagon ort-cpu on the graph as given
   (rewrite off), vs-mlrt's ``core.ort.Model(provider="CPU")`` and
   ``core.ov.Model(device="CPU")`` configured as vsmlrt.py's ``Backend.OV_CPU``
   does (one stream, pinned threads, f32), and vs-mlrt ort on our rewritten graph
   (what the rewrite alone would give it). Each filter renders core.num_threads warm-up frames,
   then ``--frames`` timed frames; ``--rounds`` rounds alternate the order
   (forward, then backward) so machine noise hits every filter alike, and the best
   round is reported. Each round renders new frame numbers (no cache hits).
2. A bare inference loop on the same 1x3x480x640 float32 input with onnxruntime
   and OpenVINO called directly, on the graph, settings and number of concurrent
   runs vsparagon's backends use, timed in the same rounds. Plugin overhead =
   (bare fps - plugin fps) / bare fps.
3. Peak resident memory (VmHWM of a child process) while ``core.num_threads``
   3840x2160 frames render at once with ``tile=0`` (the automatic tile plan), and
   the time. vs-mlrt runs the whole frame untiled: ``mlrt-ov`` fits, ``mlrt-ort``
   took over 19 GB and was killed by the OOM killer on a 23 GB machine, so
   neither is measured unless asked.
4. That every filter computes the same thing: max |difference| of frame 0 against
   vs-mlrt ort (same ONNX, fp32, so ~1e-6; a benchmark of different work is void).

Threads: vsparagon takes ``threads=``; vs-mlrt ov takes ``INFERENCE_NUM_THREADS``
through ``config``; vs-mlrt ort has no thread setting and uses ONNX Runtime's
default (one intra-op thread per physical core), so it matches ``--threads`` only
when that is the physical core count.

Run from the repository root (the peers are ``pip install vapoursynth-mlrt-ort
vapoursynth-mlrt-ov``; a missing one is skipped)::

    .venv/bin/python benchmarks/vs_bench.py

Options: --model PATH  --frames N  --rounds N  --threads N  --core-threads N  --quiet-wait S
         --memory ours-openvino,ours-ort-cpu[,mlrt-ov,mlrt-ort]  --json PATH

On a shared machine, other processes' load is measured for every timed block and
shown beside each result; before each block the script waits (up to --quiet-wait
seconds) for the machine to go quiet.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import openvino as ov
import vapoursynth as vs

from vsparagon.bench.contenders import (
    Builder,
    eight_bit,
    mlrt_ort,
    mlrt_ort_rewritten,
    mlrt_ov,
    mlrt_ov_defaults,
    noise_clip,
    ours,
    ours_as_given,
    ours_default,
    ours_exact,
    ours_reduced,
    planes,
    rewritten,
)
from vsparagon.bench.measure import reset_peak, resident_mib, timed, wait_quiet
from vsparagon.plugin import upscale
from vsparagon.runtime.backends.base import stream_threads
from vsparagon.runtime.backends.openvino import shared_core
from vsparagon.runtime.policy import auto_streams
from vsparagon.runtime.precision import describe_cpu, native_reduced

core = vs.core

WIDTH, HEIGHT = 640, 480
MEMORY_SIZE = (3840, 2160)
REFERENCE = "vs-mlrt ort"


def progress(message: str) -> None:
    """A progress line on stderr, so stdout holds only the results."""
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the filters


FILTERS: dict[str, tuple[str, Builder, str]] = {
    # name: (memory key, builder, plugin namespace needed or "")
    "paragon ort-cpu": ("ours-ort-cpu", ours("ort-cpu"), ""),
    "paragon openvino": ("ours-openvino", ours("openvino"), ""),
    "paragon ort, as given": ("ours-ort-cpu-as-given", ours_as_given("ort-cpu"), ""),
    "vs-mlrt ort": ("mlrt-ort", mlrt_ort, "ort"),
    "vs-mlrt ov": ("mlrt-ov", mlrt_ov, "ov"),
    "mlrt ort, our graph": ("mlrt-ort-rewritten", mlrt_ort_rewritten, "ort"),
    # reduced precision, float clip: ours fp16=True (the CPU's native bf16/fp16) and vs-mlrt ov as it comes
    "paragon ov fp16=True": ("ours-openvino-reduced", ours_reduced, ""),
    "vs-mlrt ov defaults": ("mlrt-ov-defaults", mlrt_ov_defaults, "ov"),
    # as shipped, 8-bit source and output: each product's defaults
    "paragon default, 8-bit": ("ours-default-8bit", eight_bit(ours_default, takes_integers=True), ""),
    "mlrt ov defaults, 8-bit": ("mlrt-ov-defaults-8bit", eight_bit(mlrt_ov_defaults, takes_integers=False), "ov"),
}
#: Keys ``--memory`` takes: each filter's memory key.
MEMORY_KEYS = [key for key, _, _ in FILTERS.values()]
#: Filters whose output is not fp32 by design: compared against fp32 in 8-bit code values, not flagged.
REDUCED = {"paragon ov fp16=True", "vs-mlrt ov defaults", "paragon default, 8-bit", "mlrt ov defaults, 8-bit"}
#: Our filter -> the bare loop its overhead is measured against.
BARE_OF = {"paragon ort-cpu": "bare onnxruntime", "paragon openvino": "bare openvino"}


def available_filters() -> dict[str, Builder]:
    """The filters whose plugin is installed."""
    found = {}
    for name, (_, build, namespace) in FILTERS.items():
        if namespace and not hasattr(core, namespace):
            progress(f"skipping {name}: plugin core.{namespace} missing (pip install vapoursynth-mlrt-{namespace})")
            continue
        if build is ours_reduced and native_reduced() is None:
            progress(f"skipping {name}: {describe_cpu()} runs OpenVINO in fp32 only (fp16=True is refused here)")
            continue
        found[name] = build
    return found


# ---------------------------------------------------------------- bare runtimes


#: A bare loop: (one input frame, frame count) -> frames done; it may run several at once.
Loop = Callable[[np.ndarray, int], None]


def streams_of(threads: int) -> int:
    """The streams vsparagon's CPU backends use for ``threads`` under this core's ``num_threads``."""
    return auto_streams(threads, core.num_threads)


def in_streams(streams: int, run_one: Callable[[int, np.ndarray], object]) -> Loop:
    """A loop calling ``run_one(stream, x)`` ``count`` times, ``streams`` calls at once (as the plugin does)."""

    def loop(x: np.ndarray, count: int) -> None:
        def worker(stream: int) -> None:
            for _ in range(stream, count, streams):
                run_one(stream, x)

        workers = [threading.Thread(target=worker, args=(i,)) for i in range(streams)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()

    return loop


def bare_onnxruntime(model: str, threads: int) -> Loop:
    """onnxruntime on the graph and with the session options of vsparagon's ``OrtCpu`` backend."""
    streams = streams_of(threads)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = stream_threads(threads, streams)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(rewritten(model), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return in_streams(streams, lambda _, x: session.run(None, {name: x}))


def bare_openvino(model: str, threads: int) -> Loop:
    """OpenVINO on the graph and with the config of vsparagon's ``OpenVino`` backend, compiled for the input shape."""
    streams = streams_of(threads)
    ov_core = shared_core(ov)
    graph = ov_core.read_model(rewritten(model))
    graph.reshape({graph.inputs[0]: [1, 3, HEIGHT, WIDTH]})
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": str(threads)}
    if streams > 1:
        config |= {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": str(streams)}
    else:
        config["PERFORMANCE_HINT"] = "LATENCY"
    compiled = ov_core.compile_model(graph, "CPU", config)
    requests = [compiled.create_infer_request() for _ in range(streams)]
    # the output stays in the request (a view); the loop does not copy it out
    return in_streams(streams, lambda i, x: requests[i].infer({0: x}, share_inputs=True))


def first_output(model: str, make: Callable[[str, int], Loop], x: np.ndarray) -> np.ndarray:
    """Frame 0 through the bare runtime, for the same-output check (one plain call, no streams)."""
    if make is bare_onnxruntime:
        session = ort.InferenceSession(rewritten(model), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: x})[0][0]
    ov_core = shared_core(ov)
    exact = {"INFERENCE_PRECISION_HINT": "f32"}  # OpenVINO's default is bf16 on a CPU with it
    request = ov_core.compile_model(ov_core.read_model(rewritten(model)), "CPU", exact).create_infer_request()
    request.infer({0: x})
    return np.array(request.get_output_tensor(0).data[0])


BARE: dict[str, Callable[[str, int], Loop]] = {
    "bare onnxruntime": bare_onnxruntime,
    "bare openvino": bare_openvino,
}


# ---------------------------------------------------------------- clip and timing


def time_clip(clip: vs.VideoNode, first: int, count: int) -> tuple[float, float, float]:
    """:func:`timed` rendering frames ``first .. first+count-1`` through ``clip.frames()``."""
    return timed(lambda: [None for _ in clip[first : first + count].frames()], count)


def time_bare(loop: Loop, x: np.ndarray, count: int) -> tuple[float, float, float]:
    """:func:`timed` for ``count`` frames of a bare loop."""
    return timed(lambda: loop(x, count), count)


# ---------------------------------------------------------------- peak memory (child process)


def memory_child(key: str, model: str, threads: int) -> None:
    """Render 4K frames with filter ``key`` as vspipe does; print ``{"baseline_mib", "peak_mib", "seconds", "frames"}``.

    ``core.num_threads`` frames are rendered together through ``clip.frames()``, so
    every stream of the CPU backends holds a tile at once, as in a real encode. The
    source frames are rendered first and the high-water mark then reset (Linux
    ``clear_refs``), so making the test pattern does not count; ``baseline_mib`` is
    the resident size just before the upscaled frames are asked for.
    """
    build = next(b for k, b, _ in FILTERS.values() if k == key)
    width, height = MEMORY_SIZE
    count = max(1, core.num_threads)
    source = noise_clip(width, height, count)
    for n in range(count):
        source.get_frame(n)
    clip = build(source, model, threads)
    if not reset_peak():
        progress("could not reset the peak RSS; the peak may include making the test pattern")
    baseline = resident_mib("VmRSS")
    start = time.perf_counter()
    for _ in clip.frames():
        pass
    seconds = time.perf_counter() - start
    peak = resident_mib("VmHWM")
    print(json.dumps({"baseline_mib": baseline, "peak_mib": peak, "seconds": seconds, "frames": count}))


def measure_memory(key: str, model: str, threads: int) -> dict[str, float | str]:
    """Run :func:`memory_child` for ``key`` in a fresh interpreter; ``{"error": ...}`` if it fails."""
    cmd = [sys.executable, __file__, "--memory-child", key, "--model", model, "--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode == 0:
        return json.loads(done.stdout.strip().splitlines()[-1])
    if done.returncode < 0:
        return {"error": f"killed by signal {-done.returncode} (9: most likely out of memory)"}
    tail = done.stderr.strip().splitlines()
    return {"error": f"exit {done.returncode}: {tail[-1] if tail else 'no message'}"}


# ---------------------------------------------------------------- main


def make_model(path: str | None) -> str:
    """``path``, or a tiny x2 random-init model exported once into the temp folder."""
    if path:
        return path
    target = Path(tempfile.gettempdir()) / "vsparagon-bench" / "tiny_x2.onnx"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        progress(f"exporting {target}")
        export = "from vsparagon.cli.main import main; raise SystemExit(main())"
        args = ["export", "--variant", "tiny", "--scale", "2", "--random-init", "-o", str(target)]
        subprocess.run([sys.executable, "-c", export, *args], check=True, stdout=subprocess.DEVNULL)
    return str(target)


def versions() -> dict[str, str]:
    """Runtime and plugin versions, for the record."""
    found = {
        "vapoursynth": str(core.core_version.release_major),
        "onnxruntime": ort.__version__,
        "openvino": ov.get_version(),
        "numpy": np.__version__,
        "cpu": platform.processor() or platform.machine(),
    }
    for namespace in ("ort", "ov"):
        if hasattr(core, namespace):
            info = {k: v.decode() if isinstance(v, bytes) else v for k, v in getattr(core, namespace).Version().items()}
            runtime = info.get("onnxruntime_version") or info.get("openvino_version", "?")
            found[f"vs-mlrt {namespace}"] = f"{info['version']} (bundled runtime {runtime})"
    return found


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="fp32 ONNX (x2, RGB); default: export tiny x2 random-init")
    parser.add_argument("--frames", type=int, default=8, help="timed frames per filter and round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, alternating the order; best reported")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="inference threads")
    parser.add_argument("--core-threads", type=int, default=0, help="core.num_threads; 0 = VapourSynth default")
    parser.add_argument(
        "--memory",
        default="ours-openvino,ours-ort-cpu",
        help=f"filters for the 4K peak memory test, comma-separated, or none ({', '.join(MEMORY_KEYS)})",
    )
    parser.add_argument("--quiet-wait", type=float, default=30, help="max s to wait for a quiet machine per block")
    parser.add_argument("--json", help="also write the numbers here")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.memory = [] if args.memory.strip().lower() in ("", "none") else args.memory.split(",")
    unknown = [key for key in args.memory if key not in MEMORY_KEYS]
    if unknown:
        parser.error(f"--memory: unknown {', '.join(unknown)}; one of {', '.join(MEMORY_KEYS)}, or none")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every measurement and print the tables."""
    args = parse_args(argv)
    model = make_model(args.model)
    if args.memory_child:
        memory_child(args.memory_child, model, args.threads)
        return 0
    if args.core_threads:
        core.num_threads = args.core_threads
    frames, rounds, threads = args.frames, args.rounds, args.threads

    # Warm-up frames (one per frame in flight, so every stream has run), then rounds of distinct
    # frames, so nothing comes from a cache.
    warm = max(1, core.num_threads)
    source = noise_clip(WIDTH, HEIGHT, warm + frames * rounds)
    x = planes(source.get_frame(0))[None]  # (1, 3, H, W)
    filters = {name: build(source, model, threads) for name, build in available_filters().items()}
    bares = {name: make(model, threads) for name, make in BARE.items()}

    outputs: dict[str, np.ndarray] = {}
    for name, clip in filters.items():
        progress(f"warm-up {name}")
        outputs[name] = planes(clip.get_frame(0))
        for _ in clip[:warm].frames():
            pass
    for name, loop in bares.items():
        progress(f"warm-up {name}")
        loop(x, streams_of(threads))
        outputs[name] = first_output(model, BARE[name], x)
    reference = REFERENCE if REFERENCE in outputs else "bare onnxruntime"
    # the 8-bit pipelines against our exact (fp32) one on the same 8-bit input
    exact8 = planes(eight_bit(ours_exact, takes_integers=True)(source, model, threads).get_frame(0))
    diffs = {
        name: float(np.abs(out - (exact8 if name.endswith("8-bit") else outputs[reference])).max())
        for name, out in outputs.items()
        if name != reference
    }

    fps: dict[str, list[float]] = {name: [] for name in [*filters, *bares]}
    cpu: dict[str, list[float]] = {name: [] for name in fps}
    others: dict[str, list[float]] = {name: [] for name in fps}
    for r in range(rounds):
        order = list(fps) if r % 2 == 0 else list(reversed(fps))
        for name in order:
            wait_quiet(args.quiet_wait)
            if name in filters:
                speed, cost, busy = time_clip(filters[name], warm + r * frames, frames)
            else:
                speed, cost, busy = time_bare(bares[name], x, frames)
            fps[name].append(speed)
            cpu[name].append(cost)
            others[name].append(busy)
            progress(f"round {r + 1}/{rounds} {name}: {speed:.3f} fps, {cost:.2f} CPU s/frame, others {busy:.0%}")
    best = {name: max(values) for name, values in fps.items()}
    median = {name: statistics.median(values) for name, values in fps.items()}

    own_work = {
        name: plugin_work_ms(source, model, threads, frames, name.split()[-1]) for name in BARE_OF if name in filters
    }

    memory = {}
    for key in args.memory:
        progress(f"peak memory {key} at {MEMORY_SIZE[0]}x{MEMORY_SIZE[1]}")
        memory[key] = measure_memory(key, model, threads)

    report = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "model": model,
        "clip": f"{WIDTH}x{HEIGHT} RGBS -> x2",
        "frames": frames,
        "rounds": rounds,
        "threads": threads,
        "core_threads": core.num_threads,
        "versions": versions(),
        "fps_rounds": fps,
        "fps_best": best,
        "fps_median": median,
        "cpu_s_per_frame_rounds": cpu,
        "other_processes_share_rounds": others,
        "max_abs_diff_vs": {"reference": reference, **diffs},
        "overhead": {
            ours_: (best[bare] - best[ours_]) / best[bare] for ours_, bare in BARE_OF.items() if ours_ in best
        },
        "plugin_work_ms_per_frame": own_work,
        "bare_ms_per_frame_median": {bare: 1000 / median[bare] for bare in BARE_OF.values() if bare in median},
        "peak_memory_4k": memory,
    }
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


def plugin_work_ms(source: vs.VideoNode, model: str, threads: int, count: int, backend: str) -> float:
    """Wall ms per frame of our filter with the model call replaced by a no-op (conversions, copies, callbacks).

    This isolates the plugin's own work, which a difference of two noisy fps figures cannot resolve.
    """
    from vsparagon.runtime import sessions

    clip = upscale(source, model=model, backend=backend, threads=threads)
    clip.get_frame(0)
    targets = [s for s in sessions.shared_sessions().values() if s.scale == 2]
    canned = np.zeros((1, 3, HEIGHT * 2, WIDTH * 2), dtype=np.float32)
    saved = [(s, s._run) for s in targets]
    try:
        for s in targets:
            s._run = lambda batch: canned  # type: ignore[method-assign]
        fresh = upscale(source, model=model, backend=backend, threads=threads)
        speed, _, _ = time_clip(fresh, 1, count)
    finally:
        for s, run in saved:
            s._run = run  # type: ignore[method-assign]
    return 1000 / speed


def print_report(report: dict) -> None:
    """The tables."""
    print(f"\n== vs_bench {report['date']} ==")
    print(f"model {report['model']}; clip {report['clip']}; {report['frames']} frames x {report['rounds']} rounds")
    print(f"threads {report['threads']}; core.num_threads {report['core_threads']}; requests via clip.frames()")
    print("versions: " + "; ".join(f"{k} {v}" for k, v in report["versions"].items()))

    best, median = report["fps_best"], report["fps_median"]
    peers = [p for p in ("vs-mlrt ort", "vs-mlrt ov") if p in best]
    print(
        f"\n{'contender':<22}{'fps':>8}{'ms/frame':>10}{'median':>8}"
        + "".join(f"{'vs ' + p.split()[-1]:>14}" for p in peers)
        + f"{'CPU s':>8}{'others':>8}   rounds (fps)"
    )
    for name, value in best.items():
        line = f"{name:<22}{value:>8.3f}{1000 / value:>10.0f}{median[name]:>8.3f}"
        line += "".join(f"{value / best[p]:>7.2f}x/{median[name] / median[p]:.2f}x" for p in peers)
        i = report["fps_rounds"][name].index(value)
        cost, busy = report["cpu_s_per_frame_rounds"][name][i], report["other_processes_share_rounds"][name][i]
        line += f"{cost:>8.2f}{busy:>8.0%}"
        line += "   " + " ".join(f"{v:.3f}" for v in report["fps_rounds"][name])
        print(line)
    print(
        "fps and ms/frame: best round; median: median round fps. vs X: best fps / X's best fps and median / "
        "X's median (>1 = faster).\nOf the best round: CPU s = CPU seconds this process used per frame; "
        "others = share of the machine's CPUs other processes used meanwhile."
    )

    print("\nplugin overhead vs bare runtime ((bare fps - plugin fps) / bare fps; best rounds, then medians):")
    for name, value in report["overhead"].items():
        bare = BARE_OF[name]
        print(f"  {name:<18} {value:+.1%} / {(median[bare] - median[name]) / median[bare]:+.1%}  (vs {bare})")

    print("\nplugin's own work, model call replaced by a no-op (ms/frame; % of the bare runtime's median frame):")
    bare_ms = report["bare_ms_per_frame_median"]
    for name, ms in report["plugin_work_ms_per_frame"].items():
        bare = BARE_OF[name]
        print(f"  {name:<18} {ms:.1f} ms  = {ms / bare_ms[bare]:.1%} of {bare} ({bare_ms[bare]:.0f} ms)")

    diffs = dict(report["max_abs_diff_vs"])
    reference = diffs.pop("reference")
    print(f"\nsame output? max |frame 0 - {reference}| (RGBS):")
    for name, value in diffs.items():
        if name in REDUCED:  # reduced precision or 8-bit output: how far, in 8-bit code values
            against = "our fp32 8-bit pipeline" if name.endswith("8-bit") else reference
            print(f"  {name:<24} {value:.2e} = {value * 255:.2f} 8-bit code values (reduced precision; vs {against})")
        else:
            print(f"  {name:<24} {value:.2e}" + ("" if value <= 1e-4 else "   <-- DIFFERENT COMPUTATION"))

    bars = [
        ("exact: best paragon fp32 / best vs-mlrt fp32", ["paragon ort-cpu", "paragon openvino"],
         ["vs-mlrt ort", "vs-mlrt ov"]),
        ("reduced: paragon fp16=True / vs-mlrt ov defaults", ["paragon ov fp16=True"], ["vs-mlrt ov defaults"]),
        ("as shipped, 8-bit: paragon default / vs-mlrt ov defaults", ["paragon default, 8-bit"],
         ["mlrt ov defaults, 8-bit"]),
    ]  # fmt: skip
    print("\nbars (best rounds; medians):")
    for label, mine, theirs in bars:
        if all(n in best for n in mine + theirs):
            ours_best, peer_best = max(best[n] for n in mine), max(best[n] for n in theirs)
            ours_med, peer_med = max(median[n] for n in mine), max(median[n] for n in theirs)
            print(f"  {label}: {ours_best / peer_best:.2f}x; {ours_med / peer_med:.2f}x")

    width, height = MEMORY_SIZE
    for key, m in report["peak_memory_4k"].items():
        if "error" in m:
            print(f"\npeak RSS {key} {width}x{height} tile=0: failed, {m['error']}")
            continue
        print(
            f"\npeak RSS {key} {width}x{height} tile=0, {m['frames']} frames at once: {m['peak_mib']:.0f} MiB "
            f"(before the frames {m['baseline_mib']:.0f} MiB, +{m['peak_mib'] - m['baseline_mib']:.0f} MiB; "
            f"{m['seconds']:.1f} s)"
        )


if __name__ == "__main__":
    sys.exit(main())
