"""Starting from another model (model.init), the run history in states, and ``paragon release``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image
from train_helpers import BASE, merge

from vsparagon import models
from vsparagon.errors import ConfigError
from vsparagon.runtime import source
from vsparagon.tools.release import model_card
from vsparagon.train import train
from vsparagon.train.config import parse_config
from vsparagon.train.data import synthetic_picture
from vsparagon.train.loop import load_initial
from vsparagon.train.state import list_states, load_state


@pytest.fixture(scope="module")
def x2_run(tmp_path_factory):
    """A 4-step tiny x2 run, resumed once (steps 0-2, then 2-4)."""
    out = tmp_path_factory.mktemp("x2run")
    cfg = parse_config(merge(BASE, {"train": {"iters": 4, "save_every": 2}}))
    train(cfg, out, stop_at=2)
    train(cfg, out, resume=True)
    return out


def test_a_x4_model_starts_from_a_x2_state_except_its_upsampler(x2_run):
    state_path = list_states(x2_run / "checkpoints")[-1][1]
    ema = load_state(state_path).modules["ema"]
    x4 = models.create("tiny", 4)
    with pytest.raises(ConfigError, match=r"does not fit this model .*set model.init_strict: false"):
        load_initial(x4, state_path, strict=True)
    fresh = load_initial(x4, state_path, strict=False)
    assert fresh
    assert all(name.startswith("upsample.0.") for name in fresh)
    own = x4.state_dict()
    taken = [k for k in own if k not in fresh]
    assert len(taken) > 100
    assert all(torch.equal(own[k], ema[k]) for k in taken)
    with pytest.raises(ConfigError, match=r"only \d+ of this model's \d+ tensors fit .* \(another variant\?\)"):
        load_initial(models.create("xs", 2), state_path, strict=False)


def test_states_record_each_process_of_the_run(x2_run):
    state = load_state(list_states(x2_run / "checkpoints")[-1][1])
    history = state.extra["history"]
    assert [(h["from"], h["to"]) for h in history] == [(0, 2), (2, 4)]
    assert all(h["seconds"] > 0 and "CPU" in h["hardware"] for h in history)


def _val_folder(path: Path) -> Path:
    path.mkdir()
    for i in range(2):
        pic = synthetic_picture(10 + i, 64 + 16 * i)
        Image.fromarray(pic).save(path / f"pic{i}.png")
    return path


def test_paragon_release_writes_a_shippable_model_and_its_card(x2_run, tmp_path):
    val = _val_folder(tmp_path / "val")
    out = tmp_path / "models"
    result = subprocess.run(
        [sys.executable, "-m", "vsparagon.cli.main", "release", str(x2_run), "--out", str(out), "--val", str(val)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    stem = "paragonsr_tiny_x2"
    for suffix in (".safetensors", ".onnx", "_fp16.onnx", ".md", "_curves.png", ".quality.json"):
        assert (out / f"{stem}{suffix}").is_file(), suffix
    assert f"step 4: wrote {out / stem}.safetensors" in result.stdout

    # the release is the EMA of the newest state, fused; the ONNX runs it
    ema = models.create("tiny", 2)
    ema.load_state_dict(load_state(list_states(x2_run / "checkpoints")[-1][1]).modules["ema"])
    fused = models.load(out / f"{stem}.safetensors")
    assert models.is_fused(fused)
    x = torch.rand(1, 3, 12, 16)
    with torch.no_grad():
        want = ema.eval()(x).numpy()
    session = ort.InferenceSession(str(out / f"{stem}.onnx"), providers=["CPUExecutionProvider"])
    assert np.abs(session.run(None, {"input": x.numpy()})[0] - want).max() < 1e-4
    assert source.open_model(out / f"{stem}_fp16.onnx").precision == "fp16"

    # the card's table is paragon eval's, and the history is in it
    quality = json.loads((out / f"{stem}.quality.json").read_text())
    assert quality["step"] == 4
    (scores,) = quality["quality"].values()
    card = (out / f"{stem}.md").read_text()
    assert f"{scores['model_psnr']:.3f} / {scores['model_ssim']:.4f}" in card
    assert f"{scores['bicubic_psnr']:.3f} / {scores['bicubic_ssim']:.4f}" in card
    assert "| 0 -> 2 |" in card
    assert "| 2 -> 4 |" in card
    assert "(4 of 4 planned steps" in card
    assert stat_mode(out / f"{stem}.onnx") == 0o644


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_release_under_a_shipped_name_scores_compressed_input_too(x2_run, tmp_path):
    # A video model ships as paragonsr_tiny_video_x2 (variant="tiny_video") and its card
    # carries a second table on H.264-compressed LR pictures.
    val = _val_folder(tmp_path / "val")
    out = tmp_path / "models"
    stem = "paragonsr_tiny_video_x2"
    command = [sys.executable, "-m", "vsparagon.cli.main", "release", str(x2_run), "--out", str(out)]
    command += ["--val", str(val), "--name", stem, "--lr-codec", "h264:30"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    quality = json.loads((out / f"{stem}.quality.json").read_text())["quality"]
    assert sorted(quality) == sorted([str(val), f"{val} --lr-codec h264:30"])
    plain, compressed = quality[str(val)], quality[f"{val} --lr-codec h264:30"]
    # the same model and pictures, worse input: every method scores lower
    assert all(compressed[f"{m}_psnr"] < plain[f"{m}_psnr"] for m in ("model", "bicubic", "lanczos"))
    card = (out / f"{stem}.md").read_text()
    assert 'core.paragon.Upscale(clip, variant="tiny_video", scale=2)' in card
    assert "LR = bicubic downscale, then h264:30 compression" in card
    assert f"{compressed['model_psnr']:.3f} / " in card


def test_release_of_a_folder_without_states_is_one_clear_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "vsparagon.cli.main", "release", str(tmp_path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "no training checkpoint (state_*.safetensors)" in lines[0]


def test_a_run_starts_from_a_fused_model_file(x2_run):
    # A shipped model (fused safetensors) is a valid model.init: the training form computes
    # what it did, so a x4 run starts from the shipped x2 body and a video run from the fidelity model.
    (fused_path,) = list(x2_run.glob("*.safetensors"))
    fused = models.checkpoint.load(fused_path)
    x2 = models.create("tiny", 2)
    assert load_initial(x2, fused_path, strict=True) == []
    x = torch.rand(1, 3, 16, 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(x2.train()(x), fused(x), atol=1e-4)
    fresh = load_initial(models.create("tiny", 4), fused_path, strict=False)
    assert fresh
    assert all(name.startswith("upsample.0.") for name in fresh)


@pytest.mark.parametrize(
    ("loss", "line"),
    [
        ({}, "- Loss: charbonnier."),
        (
            {"fft": 0.05, "range_guard": 10.0, "range_samples": 2},
            "- Loss: charbonnier + 0.05 x FFT + 10.0 x output-range guard (2 generated hard patterns per batch, "
            "range [-0.5, 1.5]).",
        ),
    ],
)
def test_the_card_names_every_loss_term(loss, line):
    cfg = parse_config(merge(BASE, {"loss": loss}))
    card = model_card("paragonsr_tiny_x2", cfg, 4, {}, [], [], None, "", source_state="state_0000004.safetensors")
    assert line in card.splitlines()


@pytest.mark.parametrize("quantize", [False, True])
def test_the_card_says_whether_the_lr_was_rounded_to_8_bits(quantize):
    cfg = parse_config(merge(BASE, {"degradation": {"preset": "bicubic", "quantize": quantize}}))
    card = model_card("paragonsr_tiny_x2", cfg, 4, {}, [], [], None, "", source_state="state_0000004.safetensors")
    assert ("The LR is then rounded to 8-bit code values." in card) == quantize
    assert "bicubic (antialiased) downscaling only" in card
