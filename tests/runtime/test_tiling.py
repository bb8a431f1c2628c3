"""Tiling is pure math: full coverage, fixed window shapes, tiled == untiled, no seams.

The model stand-in is a real local operator written in numpy: a separable blur of
radius ``r`` with zero padding at the border (like a conv net's padding), a
pointwise ``tanh`` and a nearest-neighbour upscale. Each output pixel depends on
input pixels at most ``r`` away, so crop mode with ``overlap >= r`` must be exact
and with ``overlap < r`` must not be.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from vsparagon.errors import InputError
from vsparagon.runtime.tiling import (
    BLEND_OVERLAP_CAP,
    auto_overlap,
    auto_tile,
    pad_to_multiple,
    plan_tiles,
    run_tiled,
    run_tiled_into,
)


def blur_upscale(radius: int, scale: int, *, kind: str = "box", padding: str = "constant"):
    """``infer`` for a separable blur of ``radius`` + tanh + nearest upscale by ``scale``."""
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.ones_like(offsets) if kind == "box" else np.exp(-0.5 * (offsets / max(radius / 3, 1e-9)) ** 2)
    kernel /= kernel.sum()

    def infer(batch: np.ndarray) -> np.ndarray:
        assert batch.ndim == 4
        assert batch.dtype == np.float32
        _, _, h, w = batch.shape
        pad = [(0, 0), (0, 0), (radius, radius), (radius, radius)]
        x = np.pad(batch.astype(np.float64), pad, mode=padding)  # type: ignore[call-overload]
        x = sum(k * x[:, :, i : i + h, :] for i, k in enumerate(kernel))
        x = sum(k * x[:, :, :, i : i + w] for i, k in enumerate(kernel))
        y = np.tanh(2.0 * x - 1.0)
        return y.repeat(scale, axis=2).repeat(scale, axis=3).astype(np.float32)

    return infer


def whole_frame(infer, image: np.ndarray) -> np.ndarray:
    return infer(image[None].astype(np.float32))[0]


def random_image(channels: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((channels, height, width), dtype=np.float32)


def seam_error(diff: np.ndarray) -> float:
    """Largest jump between neighbouring output pixels that the whole-frame output does not have."""
    return float(max(np.abs(np.diff(diff, axis=-2)).max(initial=0), np.abs(np.diff(diff, axis=-1)).max(initial=0)))


# --- plan_tiles ---------------------------------------------------------------------------------

SIZES = (1, 2, 7, 16, 17, 33)
TILES = (1, 3, 8, 16, 17, 34)
OVERLAPS = (0, 1, 3, 8)
MULTIPLES = (1, 4, 8)


def expected_window(size: int, tile: int, overlap: int, multiple_of: int) -> int:
    if tile >= size:
        return size
    return min(size, math.ceil((tile + 2 * overlap) / multiple_of) * multiple_of)


def test_cores_partition_image_and_windows_have_one_fixed_shape():
    checked = 0
    for height, width, tile, overlap, multiple_of in itertools.product(SIZES, SIZES, TILES, OVERLAPS, MULTIPLES):
        if overlap > tile and (tile < height or tile < width):
            continue  # rejected; see test_overlap_larger_than_a_split_tile_is_rejected
        tiles = plan_tiles(height, width, tile_h=tile, tile_w=tile, overlap=overlap, multiple_of=multiple_of)
        coverage = np.zeros((height, width), dtype=np.int32)
        shape = (
            expected_window(height, tile, overlap, multiple_of),
            expected_window(width, tile, overlap, multiple_of),
        )
        for t in tiles:
            win, core = t.window, t.core
            coverage[core.y0 : core.y1, core.x0 : core.x1] += 1
            assert (win.height, win.width) == shape
            assert min(win.y0, win.x0) >= 0
            assert win.y1 <= height
            assert win.x1 <= width
            # The window holds the core plus `overlap` context wherever the image has it.
            assert win.y0 <= max(core.y0 - overlap, 0)
            assert win.x0 <= max(core.x0 - overlap, 0)
            assert win.y1 >= min(core.y1 + overlap, height)
            assert win.x1 >= min(core.x1 + overlap, width)
            assert min(core.height, core.width) >= 1
        assert (coverage == 1).all(), (height, width, tile, overlap, multiple_of)
        checked += 1
    assert checked > 2000


def test_rectangular_tiles_partition_the_image():
    for tile_h, tile_w in ((1, 50), (50, 1), (5, 9), (13, 4)):
        tiles = plan_tiles(23, 41, tile_h=tile_h, tile_w=tile_w, overlap=min(tile_h, tile_w))
        coverage = np.zeros((23, 41), dtype=np.int32)
        for t in tiles:
            coverage[t.core.y0 : t.core.y1, t.core.x0 : t.core.x1] += 1
        assert (coverage == 1).all()
        assert len({(t.window.height, t.window.width) for t in tiles}) == 1


def test_last_window_is_shifted_back_inside_the_image():
    tiles = plan_tiles(100, 70, tile_h=32, tile_w=32, overlap=8)
    assert [(t.core.y0, t.core.y1) for t in tiles[::3]] == [(0, 32), (32, 64), (64, 96), (96, 100)]
    assert [(t.window.y0, t.window.y1) for t in tiles[::3]] == [(0, 48), (24, 72), (52, 100), (52, 100)]
    assert {(t.window.height, t.window.width) for t in tiles} == {(48, 48)}


def test_multiple_of_rounds_the_window_up_around_the_core():
    tiles = plan_tiles(100, 100, tile_h=20, tile_w=20, overlap=3, multiple_of=8)
    assert {(t.window.height, t.window.width) for t in tiles} == {(32, 32)}
    middle = tiles[2 * 5 + 2]  # core [40, 60) both ways; 6 px of extra context split 3 + 3
    assert (middle.window.y0, middle.window.y1) == (34, 66)


def test_image_smaller_than_a_tile_is_one_tile():
    (tile,) = plan_tiles(5, 7, tile_h=8, tile_w=7, overlap=100)
    assert tile.window == tile.core
    assert (tile.core.y0, tile.core.y1, tile.core.x0, tile.core.x1) == (0, 5, 0, 7)


# --- pad_to_multiple ----------------------------------------------------------------------------


def test_pad_to_multiple_replicates_the_bottom_right_edge():
    array = np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6)
    padded, pads = pad_to_multiple(array, 4)
    assert pads == (3, 2)
    assert padded.shape == (2, 8, 8)
    np.testing.assert_array_equal(padded[:, :5, :6], array)
    np.testing.assert_array_equal(padded[:, 5:, :6], np.repeat(array[:, -1:, :], 3, axis=1))
    np.testing.assert_array_equal(padded[:, :, 6:], np.repeat(padded[:, :, 5:6], 2, axis=2))


def test_pad_to_multiple_leaves_fitting_arrays_alone():
    array = np.zeros((3, 1, 8, 16), dtype=np.float32)
    padded, pads = pad_to_multiple(array, 8)
    assert padded is array
    assert pads == (0, 0)
    one = np.ones((1, 1))
    assert pad_to_multiple(one, 1)[0] is one
    assert pad_to_multiple(one, 3)[0].shape == (3, 3)


# --- run_tiled: crop ----------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_crop_with_overlap_at_least_the_radius_equals_whole_frame(scale):
    radius = 3
    infer = blur_upscale(radius, scale)
    image = random_image(3, 37, 45)
    reference = whole_frame(infer, image)
    for tile_h, tile_w in ((5, 5), (16, 9), (23, 23), (37, 45), (64, 64)):
        for overlap in (radius, radius + 2):
            out = run_tiled(image, infer, scale=scale, tile_h=tile_h, tile_w=tile_w, overlap=overlap)
            assert out.shape == (3, 37 * scale, 45 * scale)
            assert out.dtype == np.float32
            np.testing.assert_allclose(out, reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_crop_with_overlap_below_the_radius_is_not_exact(scale):
    radius = 3
    infer = blur_upscale(radius, scale)
    image = random_image(3, 37, 45)
    out = run_tiled(image, infer, scale=scale, tile_h=16, tile_w=16, overlap=radius - 1)
    assert np.abs(out - whole_frame(infer, image)).max() > 1e-3


@pytest.mark.parametrize(("height", "width"), [(1, 40), (40, 1), (1, 1), (2, 33)])
def test_one_pixel_edges(height, width):
    infer = blur_upscale(2, 2)
    image = random_image(1, height, width)
    for mode in ("crop", "blend"):
        out = run_tiled(image, infer, scale=2, tile_h=8, tile_w=8, overlap=4, mode=mode)
        np.testing.assert_allclose(out, whole_frame(infer, image), rtol=0, atol=1e-6)


# --- run_tiled: blend ---------------------------------------------------------------------------


def test_constant_image_stays_constant():
    infer = blur_upscale(2, 1, padding="edge")  # constant in, constant out, also at tile edges
    for mode, scale, (tile_h, tile_w), overlap, (height, width) in itertools.product(
        ("crop", "blend"), (1, 2, 3), ((4, 4), (7, 5), (16, 16)), (0, 1, 2, 3, 4), ((1, 17), (19, 23), (16, 32))
    ):

        def scaled(batch, scale=scale):
            return infer(batch).repeat(scale, axis=2).repeat(scale, axis=3)

        image = np.full((2, height, width), 0.3, dtype=np.float32)
        out = run_tiled(image, scaled, scale=scale, tile_h=tile_h, tile_w=tile_w, overlap=overlap, mode=mode)
        np.testing.assert_allclose(out, np.tanh(2 * 0.3 - 1), rtol=0, atol=1e-6)


# Measured on this operator (Gaussian, radius 8, sigma 8/3, x2, 97x131, tile 24): largest
# deviation from whole-frame output 7.4e-3 at overlap 8, 1.7e-3 at 10, 3.2e-4 at 12, 4.5e-5 at
# 14, 6e-8 at 16 (blend is exact from overlap 2 * radius). The bounds leave ~2x headroom.
BLEND_BOUNDS = {8: 2e-2, 10: 4e-3, 12: 1e-3, 14: 1e-4, 16: 1e-6}


def test_blend_seam_error_is_bounded_and_shrinks_with_overlap():
    infer = blur_upscale(8, 2, kind="gaussian")
    image = random_image(3, 97, 131)
    reference = whole_frame(infer, image)
    errors = []
    for overlap, bound in BLEND_BOUNDS.items():
        out = run_tiled(image, infer, scale=2, tile_h=24, tile_w=24, overlap=overlap, mode="blend")
        error = float(np.abs(out - reference).max())
        assert error < bound, (overlap, error)
        errors.append(error)
    assert errors == sorted(errors, reverse=True)
    assert len(set(errors)) == len(errors)


def test_blend_seams_are_smoother_than_crop_seams_below_the_radius():
    # Below the radius neither mode is exact; blend spreads the error over the band
    # (measured: 2x, 2x, 1.5x smaller jumps than crop at overlaps 2, 4, 6).
    infer = blur_upscale(8, 2, kind="gaussian")
    image = random_image(3, 97, 131)
    reference = whole_frame(infer, image)
    for overlap in (2, 4, 6):
        crop, blend = (
            run_tiled(image, infer, scale=2, tile_h=24, tile_w=24, overlap=overlap, mode=mode) - reference
            for mode in ("crop", "blend")
        )
        assert seam_error(blend) < seam_error(crop), overlap


@pytest.mark.parametrize("scale", [1, 2, 3])
def test_blend_with_twice_the_radius_equals_whole_frame(scale):
    infer = blur_upscale(3, scale)
    image = random_image(3, 29, 40)
    for tile in (6, 13, 64):
        out = run_tiled(image, infer, scale=scale, tile_h=tile, tile_w=tile, overlap=6, mode="blend")
        np.testing.assert_allclose(out, whole_frame(infer, image), rtol=0, atol=1e-6)


# --- run_tiled: multiple_of and batching ------------------------------------------------------------


def strict_multiple_of(infer, multiple):
    def run(batch):
        if batch.shape[2] % multiple or batch.shape[3] % multiple:
            raise ValueError(f"model needs multiples of {multiple}, got {batch.shape}")
        return infer(batch)

    return run


@pytest.mark.parametrize(("height", "width"), [(48, 64), (37, 45)])
def test_multiple_of_padding_is_invisible(height, width):
    # Windows are rounded up to the multiple inside the image, so no padding (and no
    # approximation) happens when the image is at least one window large.
    infer = blur_upscale(3, 2)
    image = random_image(3, height, width)
    for tile in (8, 12, 20):
        strict = strict_multiple_of(infer, 8)
        out = run_tiled(image, strict, scale=2, tile_h=tile, tile_w=tile, overlap=3, multiple_of=8)
        np.testing.assert_allclose(out, whole_frame(infer, image), rtol=0, atol=1e-6)


def test_multiple_of_pads_a_small_image_and_crops_the_output():
    infer = blur_upscale(1, 3)
    image = random_image(3, 5, 11)
    out = run_tiled(image, strict_multiple_of(infer, 8), scale=3, tile_h=16, tile_w=16, overlap=1, multiple_of=8)
    padded, _ = pad_to_multiple(image, 8)
    np.testing.assert_array_equal(out, whole_frame(infer, padded)[:, :15, :33])


@pytest.mark.parametrize("mode", ["crop", "blend"])
def test_batching_groups_tiles_without_changing_the_result(mode):
    infer = blur_upscale(2, 2)
    image = random_image(3, 30, 50)
    results, calls = {}, {}
    for batch in (1, 2, 3, 7, 100):
        sizes = []

        def counting(windows, sizes=sizes):
            sizes.append(windows.shape[0])
            return infer(windows)

        results[batch] = run_tiled(image, counting, scale=2, tile_h=8, tile_w=8, overlap=2, mode=mode, batch=batch)
        calls[batch] = sizes
    tiles = 4 * 7
    for batch, sizes in calls.items():
        assert sum(sizes) == tiles
        assert len(sizes) == math.ceil(tiles / batch)
        assert max(sizes) <= batch
        np.testing.assert_array_equal(results[batch], results[1])


@pytest.mark.parametrize("mode", ["crop", "blend"])
def test_run_tiled_into_writes_the_same_output_into_given_planes(mode):
    infer = blur_upscale(3, 2)
    image = random_image(3, 29, 41)
    want = run_tiled(image, infer, scale=2, tile_h=10, tile_w=12, overlap=3, mode=mode)
    # strided destinations, as a VapourSynth frame's padded planes are; stale values must not leak into blend
    backing = np.full((3, 58, 90), 7.0, dtype=np.float32)
    planes = [backing[c, :, :82] for c in range(3)]
    run_tiled_into(image, infer, planes, scale=2, tile_h=10, tile_w=12, overlap=3, mode=mode)
    np.testing.assert_array_equal(np.stack(planes), want)
    assert (backing[:, :, 82:] == 7.0).all()


@pytest.mark.parametrize(
    "planes",
    [
        [np.zeros((58, 82), np.float32)] * 2,
        [np.zeros((58, 80), np.float32)] * 3,
        [np.zeros((58, 82), np.float64)] * 3,
    ],
    ids=["too-few", "wrong-size", "wrong-dtype"],
)
def test_run_tiled_into_rejects_planes_that_do_not_fit(planes):
    with pytest.raises(InputError, match="needs 3 float32 planes of"):
        run_tiled_into(random_image(3, 29, 41), blur_upscale(1, 2), planes, scale=2, tile_h=10, tile_w=12, overlap=1)


def test_output_channels_may_differ_from_input():
    def gray_to_rgb(batch):
        return np.repeat(batch.repeat(2, axis=2).repeat(2, axis=3), 3, axis=1)

    out = run_tiled(random_image(1, 20, 20), gray_to_rgb, scale=2, tile_h=8, tile_w=8, overlap=1)
    assert out.shape == (3, 40, 40)


# --- auto_tile and auto_overlap -----------------------------------------------------------------


def window_bytes(height, width, tile, *, scale, channels, bytes_per_value, overlap, multiple_of, work_factor):
    """Memory of one window, computed from the plan itself (independent of auto_tile)."""
    win = plan_tiles(height, width, tile_h=tile[0], tile_w=tile[1], overlap=overlap, multiple_of=multiple_of)[0].window
    h, w = (math.ceil(n / multiple_of) * multiple_of for n in (win.height, win.width))
    return bytes_per_value * h * w * (channels * (1 + scale * scale) + work_factor)


AUTO_CASES = [
    # height, width, scale, overlap, multiple_of, work_factor
    (1080, 1920, 2, 16, 1, 64),
    (1080, 1920, 4, 8, 8, 128),
    (576, 720, 3, 0, 4, 0),
    (37, 1000, 2, 5, 1, 32),
    (37, 45, 2, 3, 8, 16),  # the whole frame needs padding to 40 x 48
    (1, 1, 1, 0, 1, 1),
]


@pytest.mark.parametrize(("height", "width", "scale", "overlap", "multiple_of", "work_factor"), AUTO_CASES)
def test_auto_tile_fits_the_budget_and_grows_with_it(height, width, scale, overlap, multiple_of, work_factor):
    common = {"scale": scale, "channels": 3, "bytes_per_value": 2, "overlap": overlap, "multiple_of": multiple_of}
    whole = window_bytes(height, width, (height, width), work_factor=work_factor, **common)
    smallest_tile = math.ceil(max(overlap, 1) / multiple_of) * multiple_of
    smallest = window_bytes(
        height, width, (min(smallest_tile, height), min(smallest_tile, width)), work_factor=work_factor, **common
    )
    previous = (0, 0)
    for budget in np.maximum(np.geomspace(whole / 5000, whole * 2, 60).astype(int), 1):
        if budget < smallest:  # a soft budget: the cheaper of the smallest tile and the whole frame, never a failure
            cheaper = (height, width) if whole <= smallest else (min(smallest_tile, height), min(smallest_tile, width))
            assert auto_tile(height, width, budget_bytes=int(budget), work_factor=work_factor, **common) == cheaper
            continue
        tile = auto_tile(height, width, budget_bytes=int(budget), work_factor=work_factor, **common)
        assert window_bytes(height, width, tile, work_factor=work_factor, **common) <= budget
        assert tile[0] >= previous[0]
        assert tile[1] >= previous[1]
        for size, t in zip((height, width), tile, strict=True):
            assert 1 <= t <= size
            assert t == size or (t % multiple_of == 0 and t >= overlap)
        assert tile == auto_tile(height, width, budget_bytes=int(budget), work_factor=work_factor, **common)
        previous = tile
    assert auto_tile(height, width, budget_bytes=int(whole), work_factor=work_factor, **common) == (height, width)
    if whole - 1 >= smallest:
        below = auto_tile(height, width, budget_bytes=int(whole) - 1, work_factor=work_factor, **common)
        assert below != (height, width)


def test_auto_tile_splits_into_equal_parts():
    # A 1000 px tile would leave an 80 px sliver of 1080; two 544 px rows cost less.
    per_pixel = 4 * (3 * 5 + 10)
    tile = auto_tile(1080, 1080, scale=2, channels=3, bytes_per_value=4, budget_bytes=1000 * 1000 * per_pixel,
                     overlap=0, multiple_of=8, work_factor=10)  # fmt: skip
    assert tile == (544, 544)


def test_auto_overlap():
    assert auto_overlap(0, "crop") == 0
    assert auto_overlap(60, "crop") == 60
    assert auto_overlap(3, "blend") == 6  # exact: see test_blend_with_twice_the_radius_equals_whole_frame
    assert auto_overlap(60, "blend") == BLEND_OVERLAP_CAP == 16
    assert auto_overlap(879, "blend") == 16


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tile_h": -1}, r"tile_h must be an integer >= 1, got -1"),
        ({"tile_w": 0}, r"tile_w must be an integer >= 1, got 0"),
        ({"overlap": -2}, r"overlap must be an integer >= 0, got -2"),
        ({"overlap": 9}, r"overlap 9 is larger than tile_h 8"),
        ({"multiple_of": 0}, r"multiple_of must be an integer >= 1"),
        ({"tile_h": 2.5}, r"tile_h must be an integer >= 1, got 2.5"),
        ({"tile_h": True}, r"tile_h must be an integer >= 1, got True"),
        ({"height": 0}, r"height must be an integer >= 1, got 0"),
    ],
)
def test_plan_tiles_rejects_bad_values(kwargs, match):
    args = {"height": 20, "width": 20, "tile_h": 8, "tile_w": 8, "overlap": 2} | kwargs
    height, width = args.pop("height"), args.pop("width")
    with pytest.raises(ValueError, match=match):
        plan_tiles(height, width, **args)


def test_a_large_overlap_is_fine_when_the_tile_covers_the_axis():
    assert len(plan_tiles(1, 40, tile_h=1, tile_w=40, overlap=30)) == 1


@pytest.mark.parametrize(
    ("image", "kwargs", "match"),
    [
        (np.zeros((8, 8), np.float32), {}, r"\(C, H, W\) image, got shape \(8, 8\)"),
        (np.zeros((1, 3, 8, 8), np.float32), {}, r"got shape \(1, 3, 8, 8\)"),
        (np.zeros((3, 0, 8), np.float32), {}, r"non-empty"),
        (np.zeros((3, 8, 8), np.float32), {"mode": "feather"}, r"unknown tile join mode 'feather'; accepted: 'crop'"),
        (np.zeros((3, 8, 8), np.float32), {"scale": 0}, r"scale must be an integer >= 1, got 0"),
        (np.zeros((3, 8, 8), np.float32), {"batch": 0}, r"batch must be an integer >= 1, got 0"),
        (np.zeros((3, 8, 8), np.float32), {"tile_h": 0}, r"tile_h must be an integer >= 1, got 0"),
    ],
)
def test_run_tiled_rejects_bad_input(image, kwargs, match):
    args = {"scale": 2, "tile_h": 4, "tile_w": 4, "overlap": 1} | kwargs
    with pytest.raises(ValueError, match=match):
        run_tiled(image, blur_upscale(1, 2), **args)


@pytest.mark.parametrize(
    "wrong",
    [
        lambda x: x,  # forgot to upscale
        lambda x: x.repeat(2, axis=2).repeat(2, axis=3)[0],  # dropped the batch axis
        lambda x: x.repeat(2, axis=2).repeat(2, axis=3)[:1],  # fewer tiles than given
        lambda x: x.repeat(2, axis=2).repeat(3, axis=3),  # wrong width
    ],
)
def test_run_tiled_rejects_infer_returning_the_wrong_shape(wrong):
    with pytest.raises(ValueError, match=r"infer returned shape .* expected \(2, C, 12, 12\) at scale 2"):
        run_tiled(random_image(3, 16, 16), wrong, scale=2, tile_h=4, tile_w=4, overlap=1, batch=2)


def test_pad_to_multiple_rejects_bad_values():
    with pytest.raises(ValueError, match=r"multiple must be an integer >= 1, got 0"):
        pad_to_multiple(np.zeros((4, 4)), 0)
    with pytest.raises(ValueError, match=r"at least 2 axes .* got shape \(4,\)"):
        pad_to_multiple(np.zeros(4), 2)


def test_auto_tile_and_auto_overlap_reject_bad_values():
    common = {"scale": 2, "channels": 3, "bytes_per_value": 4, "overlap": 8, "work_factor": 16}
    assert auto_tile(1080, 1920, budget_bytes=100, **common) == (8, 8)  # the smallest tile: the budget is a target
    with pytest.raises(ValueError, match=r"budget_bytes must be an integer >= 1, got 0"):
        auto_tile(1080, 1920, budget_bytes=0, **common)
    with pytest.raises(ValueError, match=r"work_factor must be a number >= 0, got -1"):
        auto_tile(1080, 1920, budget_bytes=10**9, **(common | {"work_factor": -1}))
    with pytest.raises(ValueError, match=r"radius must be an integer >= 0, got -1"):
        auto_overlap(-1, "crop")
    with pytest.raises(ValueError, match=r"unknown tile join mode 'seamless'"):
        auto_overlap(4, "seamless")  # type: ignore[arg-type]
