"""Loading other projects' checkpoints: detection, safe unpickling, clear refusals."""

from __future__ import annotations

import os

import pytest
import spandrel
import torch
from spandrel.architectures.Compact import Compact
from zoo_models import MODELS, save_checkpoint

from vsparagon.catalogue import is_foreign_checkpoint
from vsparagon.errors import CheckpointError
from vsparagon.models import load, load_foreign


@pytest.mark.parametrize("name", list(MODELS))
def test_spandrel_detects_each_architecture_and_format(zoo, name):
    _, _, (arch, scale, channels) = MODELS[name]
    assert is_foreign_checkpoint(zoo[name])
    found = load_foreign(zoo[name])
    assert (found.architecture, found.scale, found.in_channels, found.out_channels) == (arch, scale, channels, channels)
    assert found.parameters == sum(p.numel() for p in found.module.parameters()) > 0
    assert found.tiling == "supported"
    x = torch.rand(1, channels, 12, 10)
    with torch.no_grad():
        y = found.module(x)
    assert y.shape == (1, channels, 24, 20)
    assert float(y.min()) >= 0  # clamped as spandrel clamps
    assert float(y.max()) <= 1


def test_size_requirements_are_reported(zoo):
    esrgan = load_foreign(zoo["esrgan"])
    assert (esrgan.multiple_of, esrgan.min_size, esrgan.square) == (1, 2, False)
    assert esrgan.tags == ("8nf", "1nb")


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_pickle_that_runs_code_is_refused_without_running_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    torch.save({"params": {"conv.weight": torch.zeros(1)}, "payload": _RunsCode()}, path)
    with pytest.raises(CheckpointError, match=r"refused: loading it would run code \(\S*system\)") as info:
        load_foreign(path)
    assert "weights-only" in str(info.value)
    assert not (tmp_path / "PWNED").exists()


def test_a_file_spandrel_does_not_know_names_the_supported_ones(tmp_path):
    path = tmp_path / "mystery.pth"
    torch.save({"encoder.weight": torch.zeros(4, 3, 3, 3)}, path)
    with pytest.raises(CheckpointError, match="does not recognise this checkpoint's architecture") as info:
        load_foreign(path)
    for name in ("ESRGAN", "SPAN", "PLKSR", "DAT", "RealESRGAN Compact"):
        assert name in str(info.value)


def test_a_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "junk.ckpt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_foreign(path)


def test_channels_other_than_rgb_or_grey_are_refused(tmp_path):
    module = Compact(num_in_ch=4, num_out_ch=4, num_feat=4, num_conv=1, upscale=2)
    rgba = save_checkpoint(module, tmp_path, "rgba", "pth")
    with pytest.raises(CheckpointError, match=r"takes 4 channels and gives 4; .*RGB \(3 -> 3\) and grey \(1 -> 1\)"):
        load_foreign(rgba)


def test_a_model_that_is_not_image_to_image_is_refused(zoo, monkeypatch):
    # spandrel's one such architecture (LaMa, inpainting) is a 27M-parameter model: its descriptor is stood in for.
    module = torch.nn.Conv2d(4, 3, 3)
    masked = spandrel.MaskedImageModelDescriptor(
        module,
        module.state_dict(),
        architecture=spandrel.MAIN_REGISTRY["LaMa"].architecture,
        purpose="Inpainting",
        tags=[],
        supports_half=False,
        supports_bfloat16=False,
        input_channels=3,
        output_channels=3,
    )
    monkeypatch.setattr(spandrel.MAIN_REGISTRY, "load", lambda state: masked)
    with pytest.raises(CheckpointError, match=r"the LaMa model is for Inpainting and takes an image and a mask; "):
        load_foreign(zoo["compact"])


def test_model_init_on_a_foreign_checkpoint_names_the_detected_architecture(zoo):
    from vsparagon.train.run import initial_weights

    with pytest.raises(CheckpointError) as info:
        initial_weights(zoo["esrgan"])
    message = str(info.value)
    assert "\n" not in message
    assert "spandrel detects architecture 'ESRGAN' (ESRGAN); not a vsparagon checkpoint" in message
    assert "its own architectures only (paragonsr)" in message
    with pytest.raises(CheckpointError, match="spandrel detects architecture 'Compact'"):
        load(zoo["compact"])
