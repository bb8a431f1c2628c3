"""Foreign checkpoints in ``core.paragon.Upscale``: same output as PyTorch, exact tiles, clear errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import vapoursynth as vs
from helpers import noise_clip, planes
from zoo_models import MODELS

from vsparagon.models import load_foreign
from vsparagon.plugin import upscale


def _torch(path, frame: vs.VideoFrame) -> np.ndarray:
    """What spandrel's module gives for ``frame`` (RGBS or GRAYS planes)."""
    x = torch.from_numpy(planes(frame).astype(np.float32)[None])
    with torch.no_grad():
        return load_foreign(path).module(x)[0].numpy()


@pytest.mark.parametrize("name", ["compact", "esrgan", "span"])
@pytest.mark.parametrize("backend", ["ort-cpu", "torch"])
def test_the_plugin_gives_what_pytorch_gives(zoo, name, backend):
    clip = noise_clip(28, 20, vs.RGBS, length=1)
    out = upscale(clip, model=zoo[name], backend=backend)
    assert (out.width, out.height, out.format.id) == (56, 40, vs.RGBS)
    np.testing.assert_allclose(planes(out.get_frame(0)), _torch(zoo[name], clip.get_frame(0)), atol=1e-4, rtol=0)


def test_a_grey_model_runs_on_a_grey_clip_and_plane_by_plane_on_colour(zoo):
    grey = noise_clip(28, 20, vs.GRAYS, length=1)
    out = upscale(grey, model=zoo["compact_grey"], backend="openvino")
    assert (out.width, out.height, out.format.id) == (56, 40, vs.GRAYS)
    np.testing.assert_allclose(planes(out.get_frame(0)), _torch(zoo["compact_grey"], grey.get_frame(0)), atol=1e-4)
    rgb = noise_clip(28, 20, vs.RGBS, length=1)
    out = upscale(rgb, model=zoo["compact_grey"], backend="ort-cpu")
    frames = [rgb.std.ShufflePlanes(p, vs.GRAY).get_frame(0) for p in range(3)]
    want = [_torch(zoo["compact_grey"], f)[0] for f in frames]
    np.testing.assert_allclose(planes(out.get_frame(0)), np.stack(want), atol=1e-4)


@pytest.mark.parametrize("name", ["compact", "compact_grey", "esrgan", "span"])
def test_tiles_join_exactly_for_a_convolutional_model(zoo, name):
    clip = noise_clip(60, 44, vs.GRAYS if MODELS[name][2][2] == 1 else vs.RGBS, length=1)
    whole = planes(upscale(clip, model=zoo[name], backend="ort-cpu").get_frame(0))
    tiled = planes(upscale(clip, model=zoo[name], backend="ort-cpu", tile=[24, 16]).get_frame(0))
    assert np.abs(tiled - whole).max() <= 1e-5


def test_a_global_context_model_blends_its_tiles_and_says_so(zoo, capfd):
    clip = noise_clip(48, 40, vs.RGBS, length=1)
    whole = planes(upscale(clip, model=zoo["rcan"], backend="ort-cpu").get_frame(0))
    assert "global context" not in capfd.readouterr().err  # run whole: nothing to say
    tiled = planes(upscale(clip, model=zoo["rcan"], backend="ort-cpu", tile=24).get_frame(0))
    note = capfd.readouterr().err
    assert "rcan.pth has global context (an impulse reaches every edge" in note
    assert "joined with blending (overlap 16)" in note
    assert tiled.shape == whole.shape
    # close to the whole frame: this small RCAN's attention over the picture moves outputs by ~1e-7
    assert np.abs(tiled - whole).max() <= 1e-4


def test_yuv_clips_and_fp16_run_too(zoo):
    clip = noise_clip(28, 20, vs.YUV420P10, length=2)
    out = upscale(clip, model=zoo["compact"], backend="ort-cpu", fp16=True)
    assert (out.width, out.height, out.format.id, out.num_frames) == (56, 40, vs.YUV420P10, 2)
    assert np.asarray(out.get_frame(1)[0]).max() > 0


def _err(**kwargs) -> str:
    clip = kwargs.pop("clip", None) or noise_clip(32, 24, length=1)
    with pytest.raises(vs.Error) as info:
        upscale(clip, **kwargs)
    message = str(info.value)
    assert message.startswith("paragon.Upscale: "), message
    assert "\n" not in message
    return message


def test_bad_foreign_models_are_clear_errors(zoo, tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"payload": print}, evil)  # a global outside the weights-only allow list
    assert re.search(r"evil.pth: refused: loading it would run code \(\S*print\)", _err(model=evil))
    mystery = tmp_path / "mystery.safetensors"
    from safetensors.torch import save_file

    save_file({"encoder.weight": torch.zeros(2, 2)}, str(mystery))
    message = _err(model=mystery)
    assert "does not recognise this checkpoint's architecture; it knows: " in message
    assert "ESRGAN" in message
    assert "upscales x2, but scale=4 was asked; pass scale=2 or a x4 model" in _err(model=zoo["compact"], scale=4)
    one_pixel = noise_clip(1, 8, length=1)
    assert "the ESRGAN model needs input of at least 2x2 pixels, and the clip is 1x8" in _err(
        clip=one_pixel, model=zoo["esrgan"]
    )
