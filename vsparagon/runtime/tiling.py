"""Tiled inference as pure math: plan tiles, pad to a multiple, run and join.

A super-resolution model maps an image ``(C, H, W)`` to ``(C, H*s, W*s)`` and is
local: an output pixel depends only on input pixels within the model's receptive
radius, with zero padding at the image border. A big frame is therefore cut into
tiles whose input windows overlap. The overlap is given in *input* pixels and
honoured at the output scale (``overlap * scale`` output pixels). vs-mlrt crops
``overlap`` *output* pixels whatever the scale, which leaves seams at scale > 1
(vs-mlrt issues #133 and #164).

Tiles are joined in one of two ways:

* ``"crop"``: each tile keeps only its core. With ``overlap >= receptive radius``
  the tiled output equals the whole-frame output exactly.
* ``"blend"``: neighbouring tiles cross-fade across the band where both are valid.
  Exact from ``overlap >= 2 * radius``; below that the error is spread smoothly
  over the band instead of jumping at one pixel, and a deep model's overlap can be
  capped far below its theoretical radius (see :data:`BLEND_OVERLAP_CAP`).

Nothing here imports torch or VapourSynth: ``infer`` is whatever runs the model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from vsparagon.errors import ConfigError, InputError

JoinMode = Literal["crop", "blend"]
"""How tile outputs are joined: keep each core (exact) or cross-fade neighbours."""
JOIN_MODES: tuple[JoinMode, ...] = ("crop", "blend")

Infer = Callable[[np.ndarray], np.ndarray]
"""``(N, C, h, w)`` float32 -> ``(N, C_out, h * scale, w * scale)``."""

BLEND_OVERLAP_CAP = 16
"""Largest overlap :func:`auto_overlap` picks for blend mode, in input pixels.

Blend mode is exact from ``overlap >= 2 * radius``. Deep models have a theoretical
radius far beyond their effective reach (ParagonSR tiny: 60, xl: 879), so the
overlap is capped: on ParagonSR tiny and xs with realistic random weights, blend
at overlap 16 deviates from whole-frame output by < 1e-6 (1e-4 at overlap 8).
"""


@dataclass(frozen=True, slots=True)
class Region:
    """A rectangle ``[y0, y1) x [x0, x1)`` in input pixels."""

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def height(self) -> int:
        """Rows in the rectangle."""
        return self.y1 - self.y0

    @property
    def width(self) -> int:
        """Columns in the rectangle."""
        return self.x1 - self.x0

    def scaled(self, scale: int) -> Region:
        """The same rectangle in output pixels."""
        return Region(self.y0 * scale, self.y1 * scale, self.x0 * scale, self.x1 * scale)


@dataclass(frozen=True, slots=True)
class Tile:
    """One tile: the input window the model sees and the core it is responsible for."""

    window: Region
    """Input pixels given to the model (core plus overlap, clamped to the image)."""
    core: Region
    """Input pixels whose output this tile supplies; the cores of a plan partition the image."""


def _check_int(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _window_length(size: int, tile: int, overlap: int, multiple_of: int) -> int:
    """Length of every input window along an axis of ``size`` pixels (before padding)."""
    if tile >= size:
        return size
    return min(size, _round_up(tile + 2 * overlap, multiple_of))


def _plan_axis(size: int, tile: int, overlap: int, multiple_of: int) -> list[tuple[int, int, int, int]]:
    """``(window0, window1, core0, core1)`` for each tile along one axis."""
    window = _window_length(size, tile, overlap, multiple_of)
    # Rounding the window up to multiple_of adds context; centre it on the core.
    before = overlap + max(0, window - tile - 2 * overlap) // 2
    spans = []
    for core0 in range(0, size, tile):
        # Clamping at the far edge shifts the last window back inside the image,
        # so every window has the same length (static shapes suit TensorRT/OpenVINO).
        start = min(max(core0 - before, 0), size - window)
        spans.append((start, start + window, core0, min(core0 + tile, size)))
    return spans


def plan_tiles(height: int, width: int, *, tile_h: int, tile_w: int, overlap: int, multiple_of: int = 1) -> list[Tile]:
    """Cut a ``height x width`` image into tiles, row-major.

    Cores step by the tile size and partition the image exactly. Each window is the
    core grown by ``overlap`` on every side and rounded up to ``multiple_of``, shifted
    back inside the image at the edges; all windows share one shape, which is
    ``tile + 2 * overlap`` (rounded up) wherever the image is that large, else the
    whole axis. A tile at least as large as the image gives one tile.

    Raises:
        ConfigError: for a size, tile or multiple below 1, a negative overlap, or an
            overlap larger than the tile along an axis that is split into tiles
            (more than 8/9 of every window's work would be thrown away).
    """
    height = _check_int("height", height, minimum=1)
    width = _check_int("width", width, minimum=1)
    tile_h = _check_int("tile_h", tile_h, minimum=1)
    tile_w = _check_int("tile_w", tile_w, minimum=1)
    overlap = _check_int("overlap", overlap, minimum=0)
    multiple_of = _check_int("multiple_of", multiple_of, minimum=1)
    for name, tile, size in (("tile_h", tile_h, height), ("tile_w", tile_w, width)):
        if tile < size and overlap > tile:
            raise ConfigError(
                f"overlap {overlap} is larger than {name} {tile}; accepted: overlap <= tile "
                f"(or a tile covering the whole axis, {size}); use a larger tile or a smaller overlap"
            )
    rows = _plan_axis(height, tile_h, overlap, multiple_of)
    cols = _plan_axis(width, tile_w, overlap, multiple_of)
    return [
        Tile(window=Region(wy0, wy1, wx0, wx1), core=Region(cy0, cy1, cx0, cx1))
        for wy0, wy1, cy0, cy1 in rows
        for wx0, wx1, cx0, cx1 in cols
    ]


def pad_to_multiple(array: np.ndarray, multiple: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad the last two axes at the bottom and right up to a multiple of ``multiple``.

    Padding replicates the edge pixels: the model then sees a continuation of the
    image rather than an artificial black edge, so the real pixels next to the
    padding change least (zero padding would add a dark border that a network's
    receptive field drags inwards). The padded rows and columns are cropped from
    the output. An array that already fits is returned as is, without a copy.

    Returns:
        The padded array and ``(pad_bottom, pad_right)`` in input pixels.

    Raises:
        ConfigError: if ``multiple < 1``.
        InputError: if ``array`` has fewer than two axes.
    """
    multiple = _check_int("multiple", multiple, minimum=1)
    if array.ndim < 2:
        raise InputError(f"pad_to_multiple needs an array with at least 2 axes (..., H, W), got shape {array.shape}")
    pad_h = _round_up(array.shape[-2], multiple) - array.shape[-2]
    pad_w = _round_up(array.shape[-1], multiple) - array.shape[-1]
    if pad_h == 0 and pad_w == 0:
        return array, (0, 0)
    widths = [(0, 0)] * (array.ndim - 2) + [(0, pad_h), (0, pad_w)]
    return np.pad(array, widths, mode="edge"), (pad_h, pad_w)


def _ramp(t: np.ndarray) -> np.ndarray:
    """Raised cosine from 0 to 1 on ``t`` in [0, 1]; ``_ramp(t) + _ramp(1 - t) == 1``."""
    return 0.5 - 0.5 * np.cos(np.pi * t)


def _blend_band(overlap: int, tile: int) -> int:
    """Half-width of the cross-fade around a core boundary, in input pixels.

    Half the overlap: every output pixel a tile contributes is then at least
    ``overlap - band = overlap // 2`` input pixels (rounded up) from its window edge.
    Fading across the whole overlap instead would mix in pixels right next to the
    window edge, the worst ones (measured 10-1000x larger error on ParagonSR).
    """
    return min(overlap // 2, tile // 2)


def _feather(core0: int, core1: int, size: int, band: int, scale: int) -> tuple[int, int, np.ndarray]:
    """Output span ``[lo, hi)`` of one tile along an axis and its blend weight there.

    Around each inner core boundary ``b`` the weight ramps across ``[b - band, b + band)``
    (in output pixels: times ``scale``); the neighbour's weight is the mirror image,
    so the weights of all tiles sum to 1 at every output pixel.
    """
    lo = core0 - band if core0 > 0 else 0
    hi = min(core1 + band, size) if core1 < size else size
    pos = np.arange(lo * scale, hi * scale, dtype=np.float64) + 0.5  # output pixel centres
    weight = np.ones(pos.shape)
    if band > 0 and core0 > 0:
        t = (pos - (core0 - band) * scale) / (2 * band * scale)
        weight = np.where(t < 1, _ramp(np.clip(t, 0, 1)), weight)
    if band > 0 and core1 < size:
        t = (pos - (core1 - band) * scale) / (2 * band * scale)
        weight = np.where(t > 0, weight * _ramp(1 - np.clip(t, 0, 1)), weight)
    return lo * scale, hi * scale, weight.astype(np.float32)


def blend_weight(
    tile: Tile, *, height: int, width: int, scale: int, overlap: int, tile_h: int, tile_w: int
) -> tuple[Region, np.ndarray]:
    """The output pixels ``tile`` adds to in ``"blend"`` mode and its ``(h, w)`` float32 weight there.

    The weights of all tiles of a plan sum to 1 at every output pixel; for joins done elsewhere
    (on a GPU) that must match :func:`run_tiled` exactly.
    """
    y0, y1, weight_y = _feather(tile.core.y0, tile.core.y1, height, _blend_band(overlap, tile_h), scale)
    x0, x1, weight_x = _feather(tile.core.x0, tile.core.x1, width, _blend_band(overlap, tile_w), scale)
    return Region(y0, y1, x0, x1), weight_y[:, None] * weight_x[None, :]


def run_tiled(
    image: np.ndarray,
    infer: Infer,
    *,
    scale: int,
    tile_h: int,
    tile_w: int,
    overlap: int,
    mode: JoinMode = "crop",
    multiple_of: int = 1,
    batch: int = 1,
) -> np.ndarray:
    """Upscale ``image`` tile by tile with ``infer`` and join the tiles.

    Tiles come from :func:`plan_tiles`; each batch of up to ``batch`` windows is
    padded to ``multiple_of`` (edge replicate), run as ``(N, C, h, w)`` float32 and
    cropped back. The output is allocated once and tiles are added as they come.

    * ``"crop"`` keeps each tile's core. Exact (equal to running ``infer`` on the
      whole frame) when ``overlap`` is at least the model's receptive radius and no
      padding is needed.
    * ``"blend"`` cross-fades neighbours with raised-cosine weights that sum to 1
      (a constant image stays constant), across ``2 * (overlap // 2)`` input pixels
      centred on each core boundary (at most the tile), so the pixels used are at
      least ``ceil(overlap / 2)`` from a window edge. Exact when ``overlap >= 2 *
      radius``. Measured bound (the tests' operator: Gaussian blur of radius ``r``,
      sigma ``r / 3``, zero padded, nearest upscale, tanh; data in [0, 1]): the
      largest deviation from whole-frame output is < 2e-2 at ``overlap = r``,
      < 1e-3 at ``1.5 r`` and < 1e-6 at ``2 r``. Below ``r`` neither mode is exact;
      for overlaps of ``r / 4`` to ``3 r / 4`` blend's seam (the jump between
      neighbouring output pixels) is 1.5-2x smaller than crop's, but at the same
      overlap its largest deviation is somewhat larger (it uses pixels nearer the
      window edge), and at an overlap of 1-2 pixels it can be the worse of the two.

    Args:
        image: ``(C, H, W)`` array; computed in float32.
        infer: the model, ``(N, C, h, w)`` -> ``(N, C_out, h * scale, w * scale)``.
        scale: output size / input size along each axis.
        tile_h: core height in input pixels.
        tile_w: core width in input pixels.
        overlap: context added on every side of a core, in input pixels.
        mode: ``"crop"`` or ``"blend"``.
        multiple_of: ``infer`` needs ``h`` and ``w`` to be multiples of this.
        batch: most windows passed to one ``infer`` call (the last call may get fewer).

    Returns:
        ``(C_out, H * scale, W * scale)`` float32.

    Raises:
        InputError: for an image that is not 3-D, or ``infer`` returning a wrong shape.
        ConfigError: for a bad scale, batch, mode or tiling parameter.
    """
    image, tiles, bands = _prepare(image, scale, batch, mode, tile_h, tile_w, overlap, multiple_of)
    _, height, width = image.shape
    full: list[np.ndarray] = []

    def allocate(channels: int) -> list[np.ndarray]:
        # Crop writes every output pixel exactly once; blend accumulates.
        alloc = np.empty if mode == "crop" else np.zeros
        full.append(alloc((channels, height * scale, width * scale), dtype=np.float32))
        return list(full[0])

    _join(image, infer, allocate, tiles, scale=scale, mode=mode, multiple_of=multiple_of, batch=batch, bands=bands)
    return full[0]


def run_tiled_into(
    image: np.ndarray,
    infer: Infer,
    out: Sequence[np.ndarray],
    *,
    scale: int,
    tile_h: int,
    tile_w: int,
    overlap: int,
    mode: JoinMode = "crop",
    multiple_of: int = 1,
    batch: int = 1,
) -> None:
    """:func:`run_tiled`, writing channel ``c`` of the output into the 2-D float32 array ``out[c]``.

    For callers that own the destination (a VapourSynth frame's planes): no full-size
    intermediate array, which at 4K x2 is 400 MB per frame.

    Raises:
        InputError: ``out`` does not have one ``(H * scale, W * scale)`` plane per output channel.
    """
    image, tiles, bands = _prepare(image, scale, batch, mode, tile_h, tile_w, overlap, multiple_of)
    _, height, width = image.shape

    def check(channels: int) -> list[np.ndarray]:
        planes = list(out)
        want = (height * scale, width * scale)
        if len(planes) != channels or any(p.shape != want or p.dtype != np.float32 for p in planes):
            got = [(p.shape, str(p.dtype)) for p in planes]
            raise InputError(f"run_tiled_into needs {channels} float32 planes of {want}, got {got}")
        if mode == "blend":
            for p in planes:
                p.fill(0)
        return planes

    _join(image, infer, check, tiles, scale=scale, mode=mode, multiple_of=multiple_of, batch=batch, bands=bands)


def _prepare(
    image: np.ndarray,
    scale: int,
    batch: int,
    mode: str,
    tile_h: int,
    tile_w: int,
    overlap: int,
    multiple_of: int,
) -> tuple[np.ndarray, list[Tile], tuple[int, int]]:
    """Checked float32 image, its tile plan and the blend bands (height, width)."""
    image = np.asarray(image)
    if image.ndim != 3 or 0 in image.shape:
        raise InputError(f"run_tiled needs a non-empty (C, H, W) image, got shape {image.shape}")
    image = image.astype(np.float32, copy=False)
    scale = _check_int("scale", scale, minimum=1)
    _check_int("batch", batch, minimum=1)
    if mode not in JOIN_MODES:
        raise ConfigError(f"unknown tile join mode {mode!r}; accepted: {', '.join(map(repr, JOIN_MODES))}")
    _, height, width = image.shape
    tiles = plan_tiles(height, width, tile_h=tile_h, tile_w=tile_w, overlap=overlap, multiple_of=multiple_of)
    return image, tiles, (_blend_band(overlap, tile_h), _blend_band(overlap, tile_w))


def _join(
    image: np.ndarray,
    infer: Infer,
    destination: Callable[[int], list[np.ndarray]],
    tiles: list[Tile],
    *,
    scale: int,
    mode: str,
    multiple_of: int,
    batch: int,
    bands: tuple[int, int],
) -> None:
    """Run the tiles in batches and join them into the planes ``destination(C_out)`` returns."""
    _, height, width = image.shape
    band_h, band_w = bands
    out: list[np.ndarray] = []
    for start in range(0, len(tiles), batch):
        group = tiles[start : start + batch]
        windows = np.stack([image[:, t.window.y0 : t.window.y1, t.window.x0 : t.window.x1] for t in group])
        padded, _ = pad_to_multiple(windows, multiple_of)  # (N, C, h, w)
        result = np.asarray(infer(padded))
        expected = (len(group), padded.shape[2] * scale, padded.shape[3] * scale)
        if result.ndim != 4 or (result.shape[0], *result.shape[2:]) != expected:
            raise InputError(
                f"infer returned shape {result.shape} for input {padded.shape}; expected "
                f"({expected[0]}, C, {expected[1]}, {expected[2]}) at scale {scale}"
            )
        if start == 0:
            out = destination(result.shape[1])
        elif result.shape[1] != len(out):
            raise InputError(f"infer returned {result.shape[1]} channels, earlier tiles had {len(out)}")
        for tile, tile_out in zip(group, result, strict=True):  # tile_out: (C_out, h*s, w*s)
            origin_y, origin_x = tile.window.y0 * scale, tile.window.x0 * scale
            if mode == "crop":
                core = tile.core.scaled(scale)
                for plane, values in zip(out, tile_out, strict=True):
                    plane[core.y0 : core.y1, core.x0 : core.x1] = values[
                        core.y0 - origin_y : core.y1 - origin_y, core.x0 - origin_x : core.x1 - origin_x
                    ]
            else:
                y0, y1, weight_y = _feather(tile.core.y0, tile.core.y1, height, band_h, scale)
                x0, x1, weight_x = _feather(tile.core.x0, tile.core.x1, width, band_w, scale)
                weight = weight_y[:, None] * weight_x[None, :]
                for plane, values in zip(out, tile_out, strict=True):
                    plane[y0:y1, x0:x1] += weight * values[y0 - origin_y : y1 - origin_y, x0 - origin_x : x1 - origin_x]


def auto_tile(
    height: int,
    width: int,
    *,
    scale: int,
    channels: int,
    bytes_per_value: int,
    budget_bytes: int,
    overlap: int,
    multiple_of: int = 1,
    work_factor: float,
) -> tuple[int, int]:
    """The largest tile ``(tile_h, tile_w)`` whose inference fits in ``budget_bytes``.

    The memory of one window of ``h x w`` input pixels (padded to ``multiple_of``) is
    ``bytes_per_value * h * w * (channels + channels * scale**2 + work_factor)``:
    input, output and the model's intermediate values. Returns ``(height, width)``
    when the whole frame fits. Otherwise the largest square tile (a multiple of
    ``multiple_of``, at least ``overlap``) that fits is found, then shrunk to split
    each axis into equal parts with the same number of tiles (same tile count, less
    wasted work). The result is deterministic and never shrinks as the budget grows.

    Args:
        height: frame height in input pixels.
        width: frame width in input pixels.
        scale: output size / input size.
        channels: input (and output) planes.
        bytes_per_value: 4 for float32, 2 for float16.
        budget_bytes: memory one ``infer`` call of one window may use.
        overlap: the overlap the tiles will be run with.
        multiple_of: the model's size multiple.
        work_factor: intermediate values per input pixel (e.g. 4 x feature channels).

    Raises:
        ConfigError: for bad arguments. A budget too small for the smallest tile gives the cheaper of
            that tile and the whole frame (the budget is a target, not a reason to fail).
    """
    height = _check_int("height", height, minimum=1)
    width = _check_int("width", width, minimum=1)
    scale = _check_int("scale", scale, minimum=1)
    channels = _check_int("channels", channels, minimum=1)
    bytes_per_value = _check_int("bytes_per_value", bytes_per_value, minimum=1)
    budget_bytes = _check_int("budget_bytes", budget_bytes, minimum=1)
    overlap = _check_int("overlap", overlap, minimum=0)
    multiple_of = _check_int("multiple_of", multiple_of, minimum=1)
    if not isinstance(work_factor, int | float) or not work_factor >= 0:
        raise ConfigError(f"work_factor must be a number >= 0, got {work_factor!r}")
    per_pixel = bytes_per_value * (channels * (1 + scale * scale) + work_factor)

    def fit(tile: int, size: int) -> int:
        return size if tile >= size else tile

    def cost(tile: int) -> float:
        h = _round_up(_window_length(height, fit(tile, height), overlap, multiple_of), multiple_of)
        w = _round_up(_window_length(width, fit(tile, width), overlap, multiple_of), multiple_of)
        return h * w * per_pixel

    # Binary search over multiples of multiple_of; cost never falls as the tile grows.
    low = _round_up(max(overlap, 1), multiple_of) // multiple_of
    high = _round_up(max(height, width), multiple_of) // multiple_of
    if cost(low * multiple_of) > budget_bytes:  # a soft budget: the cheaper of the smallest tile and the whole frame
        whole = _round_up(height, multiple_of) * _round_up(width, multiple_of) * per_pixel
        if whole <= cost(low * multiple_of):
            return height, width
        high = low
    while low < high:
        mid = (low + high + 1) // 2
        if cost(mid * multiple_of) <= budget_bytes:
            low = mid
        else:
            high = mid - 1
    best = low * multiple_of

    def balance(size: int) -> int:
        if best >= size:
            return size
        count = -(-size // best)
        return max(_round_up(-(-size // count), multiple_of), _round_up(max(overlap, 1), multiple_of))

    return balance(height), balance(width)


def auto_overlap(radius: int, mode: JoinMode) -> int:
    """The overlap, in input pixels, to tile a model of receptive ``radius`` with.

    Crop mode returns ``radius``: tiled output then equals whole-frame output.
    Blend mode returns ``min(2 * radius, BLEND_OVERLAP_CAP)``: exact for a small
    radius, and capped for deep models whose effective reach is far below their
    theoretical radius (for radius 9-16 crop is exact for less; prefer it there).

    Raises:
        ConfigError: for a negative radius or an unknown mode.
    """
    radius = _check_int("radius", radius, minimum=0)
    if mode == "crop":
        return radius
    if mode == "blend":
        return min(2 * radius, BLEND_OVERLAP_CAP)
    raise ConfigError(f"unknown tile join mode {mode!r}; accepted: {', '.join(map(repr, JOIN_MODES))}")
