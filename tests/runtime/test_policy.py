"""The tiling policy: numbers chosen from the descriptor, the frame and the memory budget."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vsparagon.catalogue import UNKNOWN_RADIUS, ModelDescriptor
from vsparagon.errors import ConfigError
from vsparagon.runtime import tiling
from vsparagon.runtime.policy import (
    UNKNOWN_RADIUS_OVERLAP,
    WORK_PER_CHANNEL,
    available_memory,
    default_budget,
    plan_frame,
    process_budget,
)

TINY = ModelDescriptor(arch="paragonsr", variant="paragonsr_tiny", scale=2, receptive_radius=60, config={"dim": 32})
FOREIGN = ModelDescriptor(arch="onnx", variant="x", scale=2, receptive_radius=UNKNOWN_RADIUS, fused=True)


def test_a_small_frame_runs_whole_with_the_exact_overlap():
    plan = plan_frame(TINY, height=480, width=640, fp16=False)
    assert (plan.tile_h, plan.tile_w, plan.overlap, plan.join) == (480, 640, 60, "crop")
    assert plan.whole(480, 640)


def test_blend_needs_less_overlap():
    assert plan_frame(TINY, height=64, width=64, fp16=False, join="blend").overlap == tiling.auto_overlap(60, "blend")


def test_a_large_frame_is_cut_to_the_budget_and_frames_in_flight_share_it():
    one = plan_frame(TINY, height=2160, width=3840, fp16=False, budget_bytes=2 << 30)
    two = plan_frame(TINY, height=2160, width=3840, fp16=False, frames_in_flight=2, budget_bytes=2 << 30)
    assert not one.whole(2160, 3840)
    assert two.tile_h * two.tile_w < one.tile_h * one.tile_w
    # the same numbers tiling.auto_tile gives for this budget and model width
    expected = tiling.auto_tile(
        2160, 3840, scale=2, channels=3, bytes_per_value=4, budget_bytes=1 << 30, overlap=60,
        work_factor=WORK_PER_CHANNEL * 32,
    )  # fmt: skip
    assert (two.tile_h, two.tile_w) == expected


def test_half_precision_fits_larger_tiles():
    full = plan_frame(TINY, height=2160, width=3840, fp16=False, budget_bytes=2 << 30)
    half = plan_frame(TINY, height=2160, width=3840, fp16=True, budget_bytes=2 << 30)
    assert half.tile_h * half.tile_w > full.tile_h * full.tile_w


def test_an_unknown_radius_gets_the_documented_overlap_on_any_picture_size():
    plan = plan_frame(FOREIGN, height=1500, width=2000, fp16=False, budget_bytes=64 << 20)
    assert plan.overlap == UNKNOWN_RADIUS_OVERLAP
    assert not plan.whole(1500, 2000)
    tiles = tiling.plan_tiles(1500, 2000, tile_h=plan.tile_h, tile_w=plan.tile_w, overlap=plan.overlap)
    covered = np.zeros((1500, 2000), dtype=int)
    for t in tiles:
        covered[t.core.y0 : t.core.y1, t.core.x0 : t.core.x1] += 1
    assert (covered == 1).all()


def test_the_size_multiple_is_honoured():
    desc = ModelDescriptor(arch="onnx", variant="m8", scale=2, multiple_of=8, receptive_radius=4, fused=True)
    assert not plan_frame(desc, height=20, width=36, fp16=False).whole(20, 36)  # padded, then cropped
    assert plan_frame(desc, height=24, width=40, fp16=False).whole(24, 40)
    cut = plan_frame(desc, height=1500, width=2000, fp16=False, budget_bytes=32 << 20)
    assert cut.multiple_of == 8
    assert cut.tile_h % 8 == 0
    assert cut.tile_w % 8 == 0


def test_the_memory_estimate_uses_the_descriptor_width():
    wide = ModelDescriptor(arch="paragonsr", variant="paragonsr_xl", scale=2, receptive_radius=60, config={"dim": 160})
    narrow = plan_frame(TINY, height=2160, width=3840, fp16=False, budget_bytes=2 << 30)
    broad = plan_frame(wide, height=2160, width=3840, fp16=False, budget_bytes=2 << 30)
    assert broad.tile_h * broad.tile_w < narrow.tile_h * narrow.tile_w
    assert FOREIGN.working_channels == 64


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tile": -1}, "tile must be 0 (automatic) or 1 to 8192"),
        ({"tile": "big"}, "tile must be an integer or [width, height]"),
        ({"tile": [64, 0]}, "tile sizes must all be > 0 unless tile=0"),
        ({"tile": [64, 1.5]}, "tile must be an integer, got 1.5"),
        ({"overlap": -2}, "overlap must be -1 (automatic) or >= 0"),
        ({"overlap": 2.0}, "overlap must be an integer"),
        ({"join": "feather"}, "join must be 'crop' or 'blend'"),
        ({"tile": 32}, "overlap 60 (the model's receptive radius) is larger than the tile width 32"),
        ({"tile": 32, "overlap": 40}, "overlap 40 (overlap) is larger than the tile width 32"),
    ],
)
def test_bad_values_name_the_fix(kwargs, message):
    with pytest.raises(ConfigError) as err:
        plan_frame(TINY, height=100, width=100, fp16=False, **kwargs)
    assert message in str(err.value)


# --- size requirements and global context (foreign models) --------------------------------------------------

GLOBAL = ModelDescriptor(arch="RCAN", variant="custom", scale=2, receptive_radius=UNKNOWN_RADIUS, global_context=True)


def test_a_global_context_model_always_blends():
    plan = plan_frame(GLOBAL, height=2160, width=3840, fp16=False, join="crop")
    assert not plan.whole(2160, 3840)
    assert (plan.join, plan.overlap) == ("blend", UNKNOWN_RADIUS_OVERLAP)


def test_a_frame_below_the_models_minimum_is_refused_and_tiles_grow_to_it():
    sixteen = ModelDescriptor(arch="DAT", variant="custom", scale=2, receptive_radius=2, min_size=16)
    with pytest.raises(ConfigError, match=r"the DAT model needs input of at least 16x16 pixels, and the clip is 20x12"):
        plan_frame(sixteen, height=12, width=20, fp16=False)
    with pytest.raises(ConfigError, match=r"tile 8 is too small for this model: .* use tile >= 12"):
        plan_frame(sixteen, height=64, width=64, fp16=False, tile=8)
    assert plan_frame(sixteen, height=64, width=64, fp16=False, tile=12).tile_h == 12
    auto = plan_frame(sixteen, height=64, width=64, fp16=False, budget_bytes=200_000)  # the budget fits 2 px tiles
    assert (auto.tile_h, auto.tile_w, auto.overlap) == (12, 12, 2)


def test_a_square_model_needs_a_square_clip_and_square_tiles():
    square = ModelDescriptor(arch="X", variant="custom", scale=2, receptive_radius=2, square=True)
    with pytest.raises(ConfigError, match=r"needs square input, and the clip is 40x32: pad it to 40x40"):
        plan_frame(square, height=32, width=40, fp16=False)
    with pytest.raises(ConfigError, match="tiles must be square"):
        plan_frame(square, height=64, width=64, fp16=False, tile=[16, 32])
    plan = plan_frame(square, height=64, width=64, fp16=False, tile=16)
    assert plan.tile_h == plan.tile_w == 16


def test_the_default_budget_is_a_third_of_the_available_memory_within_2_and_16_gib():
    gib = 1 << 30
    assert default_budget(24 * gib) == 8 * gib
    assert default_budget(3 * gib) == 2 * gib  # the floor
    assert default_budget(96 * gib) == 16 * gib  # the ceiling
    assert process_budget() == process_budget()  # once per process: every filter plans alike
    assert available_memory() is None or 0 < available_memory() < 1 << 50


def test_a_budget_too_small_for_any_tile_runs_the_cheaper_plan_instead_of_failing():
    """A deep model (s, radius 225) at 640x480 under a small budget: the whole frame costs less than any tile."""
    deep = dataclasses.replace(TINY, receptive_radius=225, config={**TINY.config, "dim": 64})
    plan = plan_frame(deep, height=480, width=640, fp16=False, frames_in_flight=2, budget_bytes=1 << 30)
    assert plan.whole(480, 640)


def test_a_runtime_that_needs_less_memory_gets_larger_tiles():
    ort = plan_frame(TINY, height=1080, width=1920, fp16=False, frames_in_flight=2, budget_bytes=8 << 30)
    ov = plan_frame(TINY, height=1080, width=1920, fp16=False, frames_in_flight=2, budget_bytes=8 << 30,
                    work_per_channel=12)  # fmt: skip
    assert not ort.whole(1080, 1920)
    assert ov.whole(1080, 1920)  # OpenVINO: the whole HD frame, 1.6x faster than the tiles
