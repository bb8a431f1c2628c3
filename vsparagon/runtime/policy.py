"""Tiling policy: how a frame of a given model is cut, from its descriptor and the memory at hand.

:mod:`vsparagon.runtime.tiling` is the pure math (plan, pad, stitch); this module
decides the numbers it is given. The VapourSynth filter and ``paragon eval`` both
call :func:`plan_frame`, so a picture is cut the same way wherever it is upscaled.
"""

from __future__ import annotations

import functools
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vsparagon.catalogue.descriptor import ModelDescriptor
from vsparagon.errors import ConfigError
from vsparagon.runtime import tiling

#: The least memory all concurrent inference calls together may use when ``tile=0`` picks the tile size.
DEFAULT_BUDGET_BYTES = 2048 * 1024 * 1024
#: The most: beyond it, larger tiles gain nothing measurable.
MAX_BUDGET_BYTES = 16 * 1024 * 1024 * 1024
#: The share of the memory available to this process (MemAvailable, or the cgroup's room) the budget takes.
BUDGET_SHARE = 1 / 3
#: Working values per input pixel, per feature channel of the model, that a CPU runtime
#: holds at its peak. Measured for tiny (dim 32) on 640x480 and 1280x1024 windows: ONNX
#: Runtime 1,510 bytes per pixel on the CPU-rewritten graph (2,370 on the graph as given),
#: OpenVINO 1,005; 20 x dim float32 values (2,620 bytes with input and output) covers all three.
WORK_PER_CHANNEL = 20


def default_budget(available: int | None = None) -> int:
    """The inference memory ``tile=0`` plans for: a third of what is available, 2-16 GiB.

    Whole frames run faster than tiles (no overlap computed twice: 1.6x at 1920x1080 for tiny x2
    on OpenVINO), so the budget grows with the machine rather than staying at the floor.
    ``available`` defaults to :func:`available_memory`.
    """
    if available is None:
        available = available_memory()
    if available is None:
        return DEFAULT_BUDGET_BYTES
    return int(min(MAX_BUDGET_BYTES, max(DEFAULT_BUDGET_BYTES, available * BUDGET_SHARE)))


@functools.cache
def process_budget() -> int:
    """:func:`default_budget`, measured once per process: every filter of a script plans alike, whatever
    the memory does meanwhile (a plan that changed between two calls would change the tiles)."""
    return default_budget()


def available_memory() -> int | None:
    """Bytes this process can still take: Linux's MemAvailable, capped by a cgroup v2 limit; None if unknown."""
    found = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max" and found is not None:
            found = min(found, max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return found


#: Overlap (input pixels) used when a model's receptive radius is unknown (a foreign ONNX graph).
#: Tiles then join approximately; pass ``overlap`` (or ``tile`` = the frame) for exactness.
UNKNOWN_RADIUS_OVERLAP = 16
MAX_TILE = 8192
JOINS: tuple[tiling.JoinMode, ...] = ("crop", "blend")


@dataclass(frozen=True)
class TilePlan:
    """How each frame is cut: core size and overlap (input pixels), the join and the size multiple."""

    tile_h: int
    tile_w: int
    overlap: int
    join: tiling.JoinMode
    multiple_of: int = 1

    def whole(self, height: int, width: int) -> bool:
        """True when a ``height x width`` frame runs in one piece, as it is (no split, no padding)."""
        return (
            self.tile_h >= height
            and self.tile_w >= width
            and height % self.multiple_of == 0
            and width % self.multiple_of == 0
        )

    def run(self, image: np.ndarray, infer: tiling.Infer, *, scale: int) -> np.ndarray:
        """``(C, H, W)`` -> ``(C, H*scale, W*scale)`` float32: whole, or tile by tile as planned."""
        if self.whole(image.shape[1], image.shape[2]):
            return np.asarray(infer(image[None])[0], dtype=np.float32)
        t = self
        return tiling.run_tiled(
            image, infer, scale=scale, tile_h=t.tile_h, tile_w=t.tile_w, overlap=t.overlap, mode=t.join,
            multiple_of=t.multiple_of,
        )  # fmt: skip

    def run_into(self, image: np.ndarray, infer: tiling.Infer, planes: list[np.ndarray], *, scale: int) -> None:
        """:meth:`run`, written into ``planes`` (writable ``(H*scale, W*scale)`` views, e.g. of a video frame)."""
        if self.whole(image.shape[1], image.shape[2]):
            out = infer(image[None])[0]
            for p, plane in enumerate(planes):
                np.copyto(plane, out[p])
        else:  # tiles go straight into the planes: no full-size array beside them
            t = self
            tiling.run_tiled_into(
                image, infer, planes, scale=scale, tile_h=t.tile_h, tile_w=t.tile_w, overlap=t.overlap, mode=t.join,
                multiple_of=t.multiple_of,
            )  # fmt: skip


def plan_frame(
    descriptor: ModelDescriptor,
    *,
    height: int,
    width: int,
    fp16: bool,
    frames_in_flight: int = 1,
    budget_bytes: int | None = None,
    work_per_channel: float = WORK_PER_CHANNEL,
    tile: object = 0,
    overlap: object = -1,
    join: str = "crop",
) -> TilePlan:
    """Choose tile size, overlap and join for frames of ``height x width`` input pixels.

    Args:
        descriptor: the model (scale, receptive radius, size multiple, feature width).
        height, width: the frame, in input pixels.
        fp16: half-precision tensors (halves the memory per value).
        frames_in_flight: inferences that run at once; they share ``budget_bytes``.
        budget_bytes: memory for all of them together when the tile size is automatic;
            None = :func:`process_budget`. A soft target: when not even the smallest tile fits it,
            the cheaper of the whole frame and that tile runs.
        work_per_channel: the runtime's working values per input pixel and feature channel
            (the session's ``work_per_channel``).
        tile: 0 (whole frame if it fits the budget, else the largest tile that does), a core
            size ``N``, or ``[width, height]`` (checked here: user values come straight in).
        overlap: context around each tile in input pixels; -1 = the receptive radius for
            ``crop`` (exact), less for ``blend``; :data:`UNKNOWN_RADIUS_OVERLAP` when the radius is unknown.
        join: ``crop`` (exact with overlap >= radius) or ``blend`` (feathered). A model with global
            context (``descriptor.global_context``) always blends: no overlap makes its tiles exact.

    Raises:
        ConfigError: a bad tile, overlap or join, naming the value and the fix; a frame smaller than
            the model's minimum, or not square for a model that needs square input.
    """
    sizes = _tile_sizes(tile)
    if join not in JOINS:
        raise ConfigError(f"join must be 'crop' or 'blend', got {join!r}")
    _check_frame(descriptor, height, width)
    mode: tiling.JoinMode = "blend" if join == "blend" or descriptor.global_context else "crop"
    if isinstance(overlap, bool) or not isinstance(overlap, numbers.Integral):
        raise ConfigError(f"overlap must be an integer, got {overlap!r}")
    overlap = int(overlap)
    if overlap < -1:
        raise ConfigError(f"overlap must be -1 (automatic) or >= 0 input pixels, got {overlap}")
    radius = descriptor.receptive_radius
    chosen = overlap
    if overlap == -1:
        chosen = tiling.auto_overlap(radius, mode) if radius >= 0 else UNKNOWN_RADIUS_OVERLAP
    multiple = max(1, descriptor.multiple_of)
    automatic = sizes == [0] or sizes == [0, 0]
    if automatic:
        tile_h, tile_w = tiling.auto_tile(
            height,
            width,
            scale=descriptor.scale,
            channels=descriptor.in_channels,
            bytes_per_value=2 if fp16 else 4,
            budget_bytes=(process_budget() if budget_bytes is None else budget_bytes) // max(1, frames_in_flight),
            overlap=chosen,
            multiple_of=multiple,
            work_factor=work_per_channel * descriptor.working_channels,
        )
    else:
        tile_w = sizes[0]
        tile_h = sizes[1] if len(sizes) == 2 else sizes[0]
        if 0 in (tile_w, tile_h):
            raise ConfigError(f"tile sizes must all be > 0 unless tile=0, got {tile!r}")
    tile_h = _fit_minimum(descriptor, tile_h, height, chosen, automatic)
    tile_w = _fit_minimum(descriptor, tile_w, width, chosen, automatic)
    if descriptor.square and min(tile_h, height) != min(tile_w, width):
        raise ConfigError(f"this model needs square input, so tiles must be square; got tile={tile!r}: use tile=N")
    for name, t, size in (("width", tile_w, width), ("height", tile_h, height)):
        if t < size and chosen > t:
            where = "the model's receptive radius" if overlap == -1 else "overlap"
            raise ConfigError(
                f"overlap {chosen} ({where}) is larger than the tile {name} {t}: more than 8/9 of every "
                f"tile would be wasted; use tile >= {chosen}, or a smaller overlap (join='blend' needs less)"
            )
    return TilePlan(
        tile_h=min(tile_h, height), tile_w=min(tile_w, width), overlap=chosen, join=mode, multiple_of=multiple
    )


def _check_frame(descriptor: ModelDescriptor, height: int, width: int) -> None:
    """A frame the model cannot take at all: smaller than its minimum, or not square when it must be."""
    name = f"the {descriptor.arch} model"
    if descriptor.square and height != width:
        raise ConfigError(
            f"{name} needs square input, and the clip is {width}x{height}: pad it to "
            f"{max(width, height)}x{max(width, height)} (std.AddBorders) and crop the result"
        )
    if min(height, width) < descriptor.min_size:
        raise ConfigError(
            f"{name} needs input of at least {descriptor.min_size}x{descriptor.min_size} pixels, and the clip is "
            f"{width}x{height}: enlarge it first (a resizer, or std.AddBorders and crop the result)"
        )


def _fit_minimum(descriptor: ModelDescriptor, tile: int, size: int, overlap: int, automatic: bool) -> int:
    """``tile``, grown (automatic) or checked (given) so that every window reaches the model's minimum size."""
    least = descriptor.min_size - 2 * overlap
    if tile >= size or tile >= least:
        return tile
    if automatic:
        return min(size, least)
    raise ConfigError(
        f"tile {tile} is too small for this model: its input must be at least {descriptor.min_size} pixels a side "
        f"(tile + 2 x overlap {overlap}); use tile >= {least}"
    )


def _tile_sizes(tile: object) -> list[int]:
    if isinstance(tile, numbers.Integral) and not isinstance(tile, bool):
        sizes = [int(tile)]
    elif isinstance(tile, Sequence) and not isinstance(tile, str) and len(tile) in (1, 2):
        sizes = list(tile)
        for t in sizes:
            if isinstance(t, bool) or not isinstance(t, numbers.Integral):
                raise ConfigError(f"tile must be an integer, got {t!r}")
    else:
        raise ConfigError(f"tile must be an integer or [width, height], got {tile!r}")
    if any(s < 0 or s > MAX_TILE for s in sizes):
        raise ConfigError(f"tile must be 0 (automatic) or 1 to {MAX_TILE} pixels, got {tile!r}")
    return [int(s) for s in sizes]


def auto_streams(threads: int, core_threads: int) -> int:
    """Frames a CPU backend infers at once: enough to keep every core busy, never more than the host requests.

    Two frames on one thread each beat one frame on two threads (no synchronisation inside the
    runtime); on many cores, streams of about four threads each keep the per-frame latency low.
    """
    cores = threads or os.cpu_count() or 1
    return max(1, min(core_threads, cores, max(2, cores // 4)))


__all__ = [
    "DEFAULT_BUDGET_BYTES",
    "JOINS",
    "MAX_BUDGET_BYTES",
    "MAX_TILE",
    "UNKNOWN_RADIUS_OVERLAP",
    "WORK_PER_CHANNEL",
    "TilePlan",
    "auto_streams",
    "available_memory",
    "default_budget",
    "plan_frame",
    "process_budget",
]
