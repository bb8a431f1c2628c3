"""Timing and memory helpers (no VapourSynth): wall and CPU time, other processes' load, peak RSS and GPU memory."""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def timed(work: Callable[[], object], count: int) -> tuple[float, float, float]:
    """Run ``work`` (which makes ``count`` frames).

    Returns:
        Frames per second, CPU seconds per frame of this process, and the share of the
        machine's CPUs that other processes used meanwhile (0 = a quiet machine).
    """
    start, cpu, machine = time.perf_counter(), time.process_time(), busy_seconds()
    work()
    wall, own = time.perf_counter() - start, time.process_time() - cpu
    others = max(0.0, busy_seconds() - machine - own) / (wall * (os.cpu_count() or 1))
    return count / wall, own / count, others


def wait_quiet(limit: float) -> None:
    """Wait up to ``limit`` seconds for other processes to use under 5% of the machine's CPUs for 1 s."""
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        machine, own = busy_seconds(), time.process_time()
        time.sleep(1.0)
        if busy_seconds() - machine - (time.process_time() - own) < 0.05 * (os.cpu_count() or 1):
            return


def busy_seconds() -> float:
    """CPU seconds every process on the machine has used since boot (Linux), else 0."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def resident_mib(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) from /proc/self/status, in MiB; else ru_maxrss.

    Not ru_maxrss where /proc exists: after fork+exec it keeps the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def reset_peak() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux ``clear_refs``); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class GpuPeak:
    """Peak memory in use on GPU 0 while the ``with`` block runs, sampled from NVML every few milliseconds.

    Counts every process on the GPU (NVML cannot single one out without privileges); the
    result is the rise over the memory in use when the block began. Nothing where NVML is absent.
    """

    def __init__(self, index: int = 0, period: float = 0.005) -> None:
        self._index, self._period = index, period
        self._nvml: Any = None
        self._start: float | None = None
        self._peak = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuPeak:
        from vsparagon.runtime import gpu_info

        self._nvml = gpu_info.open_nvml()
        if self._nvml is not None:
            self._start = gpu_info.used_mib(self._nvml, self._index)
        if self._start is not None:
            self._peak = self._start
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        from vsparagon.runtime import gpu_info

        while not self._stop.is_set():
            used = gpu_info.used_mib(self._nvml, self._index)
            if used is not None:
                self._peak = max(self._peak, used)
            self._stop.wait(self._period)

    def __exit__(self, *exc: object) -> None:
        from vsparagon.runtime import gpu_info

        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._nvml is not None:
            gpu_info.close_nvml(self._nvml)

    def result(self) -> dict[str, float]:
        """``{"gpu_peak_mib": rise}``, or nothing where NVML could not be read."""
        if self._start is None:
            return {}
        return {"gpu_peak_mib": self._peak - self._start}
