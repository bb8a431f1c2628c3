"""Global-context research networks (an exported ehrsr_tiny) through ``core.paragon.Upscale``:
whole frames when they fit, blended tiles that say they are approximate, and no exact tiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import vapoursynth as vs
from helpers import noise_clip, planes

from vsparagon import models
from vsparagon.catalogue.files import read_onnx
from vsparagon.export import export_onnx
from vsparagon.plugin._native import ensure_registered
from vsparagon.runtime.policy import plan_frame


@pytest.fixture(scope="module")
def ehrsr_onnx(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("global") / "ehrsr_tiny_x2.onnx"
    export_onnx(models.create("ehrsr_tiny", scale=2), path)
    return path


@pytest.fixture(autouse=True)
def _registered():
    ensure_registered()


def _direct(path: Path, frame: vs.VideoFrame) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": planes(frame).astype(np.float32)[None]})[0][0]


@pytest.mark.parametrize("backend", ["ort-cpu", "openvino"])
def test_a_frame_that_fits_runs_whole_and_silently(ehrsr_onnx, backend, capfd):
    clip = noise_clip(37, 29, vs.RGBS, length=1)  # odd, and no multiple of a window or a level
    out = vs.core.paragon.Upscale(clip, model=str(ehrsr_onnx), backend=backend, fp16=False)
    frame = out.get_frame(0)
    assert (frame.width, frame.height) == (74, 58)
    assert "global context" not in capfd.readouterr().err
    np.testing.assert_allclose(planes(frame), _direct(ehrsr_onnx, clip.get_frame(0)), atol=2e-4)
    # join='crop' is no request for tiles while the frame runs whole
    crop = vs.core.paragon.Upscale(clip, model=str(ehrsr_onnx), backend="ort-cpu", join="crop")
    np.testing.assert_allclose(planes(crop.get_frame(0)), planes(frame), atol=2e-4)


@pytest.mark.parametrize("join", [None, "blend"])
def test_small_tiles_blend_and_say_the_result_is_approximate(ehrsr_onnx, join, capfd):
    clip = noise_clip(48, 40, vs.RGBS, length=1)
    kwargs = {} if join is None else {"join": join}
    whole = planes(vs.core.paragon.Upscale(clip, model=str(ehrsr_onnx), backend="ort-cpu").get_frame(0))
    capfd.readouterr()
    tiled = vs.core.paragon.Upscale(clip, model=str(ehrsr_onnx), backend="ort-cpu", tile=16, **kwargs)
    got = planes(tiled.get_frame(0))
    note = capfd.readouterr().err
    assert "ehrsr_tiny_x2.onnx has global context" in note
    assert "tiles of 16x16 are joined with blending (overlap 16)" in note
    assert "close to but not the whole-frame result" in note
    assert note.count("global context") == 1  # once per filter, not per frame or tile
    assert got.shape == whole.shape
    assert np.isfinite(got).all()
    assert np.abs(got - whole).mean() < 0.05  # close to the whole frame (random weights: a loose bound)


def test_exact_tiles_of_a_global_model_are_refused_naming_the_fix(ehrsr_onnx):
    clip = noise_clip(48, 40, vs.RGBS, length=1)
    with pytest.raises(vs.Error) as err:
        vs.core.paragon.Upscale(clip, model=str(ehrsr_onnx), backend="ort-cpu", tile=16, join="crop")
    message = str(err.value)
    assert message.startswith("paragon.Upscale: join='crop' asks for exact tiles, but ehrsr_tiny_x2.onnx has global")
    assert "Run it whole (tile=0 (the whole 48x40 frame when it fits the memory budget))" in message
    assert "or pass join='blend' to tile it approximately" in message
    assert "\n" not in message


def test_the_policy_runs_it_whole_when_memory_allows_and_tiles_when_not(ehrsr_onnx):
    descriptor = read_onnx(ehrsr_onnx).descriptor
    assert descriptor is not None
    assert descriptor.global_context
    roomy = plan_frame(descriptor, height=480, width=640, fp16=False, budget_bytes=8 << 30)
    assert roomy.whole(480, 640)
    tight = plan_frame(descriptor, height=480, width=640, fp16=False, budget_bytes=16 << 20)
    assert not tight.whole(480, 640)
    assert tight.join == "blend"
