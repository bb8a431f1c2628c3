"""What every GPU backend shares: a pool of per-stream instances and the fp16 safety check.

No GPU runtime is imported here; the backends pass their own callables in.
"""

from __future__ import annotations

import queue
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from vsparagon.catalogue.descriptor import ModelDescriptor
from vsparagon.runtime.backends.base import Backend

#: Default number of frames in flight on a GPU (one instance each: stream, context, buffers).
DEFAULT_GPU_STREAMS = 2
#: Side of the square fp16 test pattern.
PROBE_SIZE = 64
#: Largest absolute difference of fp16 output from fp32 on the test pattern that still counts as safe.
HALF_TOLERANCE = 0.02


@dataclass(frozen=True, kw_only=True)
class GpuBackend(Backend):
    """What the GPU backends share: they run on the GPU, and in fp16 by default where the model is
    marked fp16-safe (our bounded designs; checked on a test pattern when the session opens)."""

    def on_gpu(self) -> bool:
        return True

    @classmethod
    def default_fp16(cls, descriptor: ModelDescriptor, *, bits: int | None) -> bool:
        """fp16 for a model marked fp16-safe, fp32 otherwise."""
        return descriptor.fp16_safe


class InstancePool[T]:
    """``count`` instances (each with its own stream, context and buffers), lent one per call.

    A call takes a free instance and gives it back; more calls than instances wait their turn.
    Instances are made eagerly, so a failure to make one surfaces when the session opens.
    """

    def __init__(self, make: Callable[[int], T], count: int) -> None:
        if count < 1:
            raise ValueError(f"an instance pool needs at least one instance, got {count}")
        self.instances: list[T] = [make(i) for i in range(count)]
        self._free: queue.SimpleQueue[T] = queue.SimpleQueue()
        for instance in self.instances:
            self._free.put(instance)

    @contextmanager
    def lend(self) -> Iterator[T]:
        """Borrow one instance for the duration of the ``with`` block."""
        instance = self._free.get()
        try:
            yield instance
        finally:
            self._free.put(instance)


def probe_pattern(channels: int, *, size: int = PROBE_SIZE, seed: int = 0) -> np.ndarray:
    """(1, C, size, size) float32 in [0, 1]: a photo-like gradient, a 1-px checkerboard and binary noise.

    The patterns that overflowed the unbounded design (docs/block-design.md), side by side.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(1, size - 1)
    third = size // 3
    image = np.empty((channels, size, size), np.float32)
    for c in range(channels):
        plane = 0.5 * (xx + yy) * (0.6 + 0.2 * c / max(1, channels - 1))
        plane[:, third : 2 * third] = ((xx * (size - 1) + yy * (size - 1)) % 2)[:, third : 2 * third]
        plane[:, 2 * third :] = rng.integers(0, 2, size=(size, size - 2 * third))
        image[c] = plane
    return image[None]


def probe_fits(descriptor: ModelDescriptor, size: int = PROBE_SIZE) -> bool:
    """Whether the square test pattern of ``size`` is an input the model takes (its multiple and minimum)."""
    return size % max(1, descriptor.multiple_of) == 0 and descriptor.min_size <= size


def half_problem(
    run_half: Callable[[np.ndarray], np.ndarray],
    run_full: Callable[[np.ndarray], np.ndarray],
    channels: int,
    *,
    tolerance: float = HALF_TOLERANCE,
) -> str | None:
    """Run the test pattern both ways; the reason fp16 is unsafe for this model, or None when it is safe."""
    pattern = probe_pattern(channels)
    half = np.asarray(run_half(pattern), np.float32)
    if not np.isfinite(half).all():
        return "its fp16 output on a test pattern is not finite (inf/NaN)"
    full = np.asarray(run_full(pattern), np.float32)
    error = float(np.abs(half - full).max())
    if error > tolerance:
        return f"its fp16 output differs from fp32 by {error:.3g} on a test pattern (tolerance {tolerance})"
    return None


def say_half_fallback(backend: str, model: str, reason: str) -> None:
    """The one stderr line a backend prints when it falls back from fp16 to fp32."""
    print(f"vsparagon: {backend} runs {model} in fp32, not fp16: {reason}", file=sys.stderr)
