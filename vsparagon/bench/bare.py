"""The bare inference loop: a backend's session run on one frame shape, no VapourSynth (the plugin's overhead baseline).

The session is configured as ``core.paragon.Upscale`` configures it for an RGBS clip (the
backend's default precision and streams: ``DEFAULT_GPU_STREAMS`` on a GPU), and is called from
as many threads as it runs at once, like the frames VapourSynth keeps in flight. The whole
frame goes in, untiled.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from vsparagon.bench.measure import GpuPeak, reset_peak, resident_mib
from vsparagon.runtime.backends.gpu_common import DEFAULT_GPU_STREAMS
from vsparagon.runtime.policy import auto_streams
from vsparagon.runtime.sessions import open_session, resolve_backend
from vsparagon.runtime.source import resolve


def measure_bare(
    backend: str, model: str, width: int, height: int, warmup: int, frames: int, threads: int
) -> dict[str, Any]:
    """Open ``backend``'s session for ``model``, run ``warmup`` frames, then time ``frames`` more.

    Raises:
        ParagonError: the backend cannot open the model (reported as this row's failure).
    """
    source = resolve(variant="tiny", scale=2, model=model)
    streams = auto_streams(threads, os.cpu_count() or 1)
    config = resolve_backend(backend, source, fp16=None, threads=threads, device=0, streams=streams, bits=None)
    if config.on_gpu():  # the plugin's frames in flight on a GPU
        config = dataclasses.replace(config, streams=DEFAULT_GPU_STREAMS)
    if source.kind == "checkpoint" and not config.runs_checkpoints:
        raise ValueError(f"the bare loop of backend={backend!r} needs an ONNX model, got {source.path.name}")
    reset_peak()
    baseline = resident_mib("VmRSS")
    with GpuPeak() as gpu:
        start = time.perf_counter()
        session = open_session(config, source)
        rng = np.random.default_rng(0)
        batch = rng.random((1, source.descriptor.in_channels, height, width), dtype=np.float32)
        for _ in range(warmup):
            session.run(batch)
        setup = time.perf_counter() - start
        lanes = max(1, session.max_parallel)
        with ThreadPoolExecutor(lanes) as pool:
            start = time.perf_counter()
            outputs = deque(pool.map(lambda _: session.run(batch), range(frames)), maxlen=1)  # keep only the last
            wall = time.perf_counter() - start
    fps = frames / wall
    return {
        "label": f"bare {config.name}",
        "fps": fps,
        "ms_per_frame": 1000 / fps,
        "setup_s": setup,
        "baseline_mib": baseline,
        "peak_mib": resident_mib("VmHWM"),
        "output": f"{outputs[-1].shape[-1]}x{outputs[-1].shape[-2]}",
        "precision": session.precision,
        "in_flight": lanes,
        **gpu.result(),
    }
