"""One benchmark configuration in a fresh process, so its peak memory is its own.

``python -m vsparagon.bench.child '{"key": "ours-ort-cpu", "model": ..., "width": ..., "height": ...,
"warmup": 1, "frames": 8, "threads": 2}'`` prints one JSON line: ``fps``, ``ms_per_frame``,
``peak_mib`` (VmHWM from creating the filter to the last frame), ``baseline_mib``,
``setup_s`` (filter creation and warm-up), ``gpu_peak_mib`` (the rise of GPU memory in use, where NVML
reads it), or ``{"skipped": reason}``. A ``bare-<backend>`` key runs the backend without VapourSynth.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def measure(key: str, model: str, width: int, height: int, warmup: int, frames: int, threads: int) -> dict[str, Any]:
    """Build the filter, render ``warmup`` frames, then time ``frames`` new ones (``clip.frames()``, like vspipe).

    A ``bare-<backend>`` key times the backend's session alone (:mod:`~vsparagon.bench.bare`).
    """
    if key.startswith("bare-"):
        return _bare(key, model, width, height, warmup, frames, threads)
    from vsparagon.bench import contenders
    from vsparagon.bench.measure import GpuPeak, reset_peak, resident_mib, timed
    from vsparagon.bench.rows import skip_reason

    try:
        reason = skip_reason(key, model)
        if reason is not None:
            return {"skipped": reason}
        label, build = contenders.builder(key)
    except LookupError as exc:
        return {"skipped": str(exc)}
    source = contenders.noise_clip(width, height, warmup + frames)
    source.get_frame(0)
    reset_peak()
    baseline = resident_mib("VmRSS")
    with GpuPeak() as gpu:
        start = time.perf_counter()
        clip = build(source, model, threads)
        for n in range(warmup):
            clip.get_frame(n)
        setup = time.perf_counter() - start
        fps, cpu, others = timed(lambda: [None for _ in clip[warmup : warmup + frames].frames()], frames)
    precision = clip.get_frame(0).props.get("ParagonPrecision")  # ours only; what the model computed in
    return {
        "label": label,
        "fps": fps,
        "ms_per_frame": 1000 / fps,
        "cpu_s_per_frame": cpu,
        "others_share": others,
        "setup_s": setup,
        "baseline_mib": baseline,
        "peak_mib": resident_mib("VmHWM"),
        "output": f"{clip.width}x{clip.height}",
        **gpu.result(),
        **({"precision": _text(precision)} if precision is not None else {}),
    }


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _bare(key: str, model: str, width: int, height: int, warmup: int, frames: int, threads: int) -> dict[str, Any]:
    """The bare loop of ``bare-<backend>`` (``bare-torch-cuda``: torch on the checkpoint of ``model``)."""
    from vsparagon.bench.bare import measure_bare
    from vsparagon.bench.rows import backend_of, checkpoint_of, skip_reason

    reason = skip_reason(key, model)
    if reason is not None:
        return {"skipped": reason}
    if key == "bare-torch-cuda":
        model = str(checkpoint_of(model))
    return measure_bare(backend_of(key), model, width, height, warmup, frames, threads)


def main() -> int:
    """Read the configuration from argv[1], print the result as one JSON line on stdout."""
    config = json.loads(sys.argv[1])
    try:
        result = measure(**config)
    except Exception as exc:  # reported by the parent as this contender's failure
        text = str(exc).strip()
        result = {"error": text.splitlines()[0] if text else type(exc).__name__}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
