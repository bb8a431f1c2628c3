"""One benchmark configuration in a fresh process, so its peak memory is its own.

``python -m vsparagon.bench.child '{"key": "ours-ort-cpu", "model": ..., "width": ..., "height": ...,
"warmup": 1, "frames": 8, "threads": 2}'`` prints one JSON line: ``fps``, ``ms_per_frame``,
``peak_mib`` (VmHWM from creating the filter to the last frame), ``baseline_mib``,
``setup_s`` (filter creation and warm-up), or ``{"skipped": reason}``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def measure(key: str, model: str, width: int, height: int, warmup: int, frames: int, threads: int) -> dict[str, Any]:
    """Build the filter, render ``warmup`` frames, then time ``frames`` new ones (``clip.frames()``, like vspipe)."""
    from vsparagon.bench import contenders
    from vsparagon.bench.measure import reset_peak, resident_mib, timed

    try:
        label, build = contenders.builder(key)
    except LookupError as exc:
        return {"skipped": str(exc)}
    source = contenders.noise_clip(width, height, warmup + frames)
    source.get_frame(0)
    reset_peak()
    baseline = resident_mib("VmRSS")
    start = time.perf_counter()
    clip = build(source, model, threads)
    for n in range(warmup):
        clip.get_frame(n)
    setup = time.perf_counter() - start
    fps, cpu, others = timed(lambda: [None for _ in clip[warmup : warmup + frames].frames()], frames)
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
    }


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
