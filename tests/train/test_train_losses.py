"""Losses and metrics: zero where they should be, rising with damage, clear errors."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from train_helpers import vgg_file

from vsparagon.errors import ConfigError
from vsparagon.train import losses
from vsparagon.train.data import synthetic_picture
from vsparagon.train.degrade import blur, from_uint8, gaussian_kernel
from vsparagon.train.metrics import psnr_y, rgb_to_y, ssim_y


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return torch.stack([from_uint8(synthetic_picture(i, 64)) for i in range(2)])


def test_pixel_losses(batch):
    assert float(losses.l1(batch, batch)) == 0
    assert abs(float(losses.charbonnier(batch, batch)) - 1e-3) < 1e-7
    assert abs(float(losses.l1(batch + 0.1, batch)) - 0.1) < 1e-6
    assert float(losses.mse(batch, batch)) == 0
    assert float(losses.mse(batch + 0.1, batch)) == pytest.approx(0.01, rel=1e-4)


def test_ms_ssim_and_fft_rise_with_damage(batch):
    assert abs(float(losses.ms_ssim(batch, batch)) - 1) < 1e-5
    noisy = (batch + 0.05 * torch.randn(batch.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    very = (batch + 0.2 * torch.randn(batch.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert 1 > float(losses.ms_ssim(noisy, batch)) > float(losses.ms_ssim(very, batch))
    assert float(losses.fft_loss(batch, batch)) == 0
    blurred = torch.stack([blur(b, gaussian_kernel(1.5, 1.5, 0, 9)) for b in batch])
    assert float(losses.fft_loss(blurred, batch)) > 0
    x = batch.clone().requires_grad_(True)
    (1 - losses.ms_ssim(x, very)).backward()
    assert torch.isfinite(x.grad).all()


def test_perceptual_from_a_local_file(tmp_path, batch):
    vgg = losses.VGGFeatures(vgg_file(tmp_path / "vgg19.safetensors"), {"conv2_2": 0.1, "conv3_4": 1.0})
    assert float(vgg(batch, batch)) == 0
    assert float(vgg(batch.flip(-1), batch)) > 0
    assert not any(p.requires_grad for p in vgg.parameters())


def test_perceptual_errors(tmp_path):
    with pytest.raises(ConfigError, match="never downloads weights"):
        losses.VGGFeatures(tmp_path / "missing.pth", {"conv3_4": 1.0})
    with pytest.raises(ConfigError, match=r"unknown VGG layers \['conv9_9'\]"):
        losses.VGGFeatures(vgg_file(tmp_path / "v.safetensors"), {"conv9_9": 1.0})
    save_file({"features.0.weight": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ConfigError, match="not a VGG-19 state dict"):
        losses.VGGFeatures(tmp_path / "other.safetensors", {"conv1_2": 1.0})
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(ConfigError, match="cannot read"):
        losses.VGGFeatures(tmp_path / "junk.pth", {"conv1_2": 1.0})


@pytest.mark.parametrize(("kind", "shape"), [("patch", (2, 1, 6, 6)), ("unet", (2, 1, 64, 64))])
def test_discriminators(batch, kind, shape):
    disc = losses.make_discriminator(kind, 16)
    logits = disc(batch)
    assert logits.shape == shape
    loss = losses.gan_loss(logits, real=True) + losses.gan_loss(disc(batch.flip(-1)), real=False)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in disc.parameters() if p.grad is not None)


class MoE(nn.Module):
    """A toy router that exposes a load-balancing loss, as a mixture-of-experts model would."""

    def __init__(self) -> None:
        super().__init__()
        self.router = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        share = self.router(x.mean((2, 3))).softmax(-1).mean(0)
        self.aux_loss = ((share - 0.25) ** 2).sum()
        return x


def test_aux_losses_are_collected(batch):
    model = nn.Sequential(nn.Identity(), MoE())
    assert losses.aux_losses(model) is None
    model(batch)
    aux = losses.aux_losses(model)
    assert aux is not None
    assert aux.requires_grad
    aux.backward()
    assert model[1].router.weight.grad is not None


def test_psnr_and_ssim_on_y(batch):
    img = batch[0]
    assert psnr_y(img, img) == math.inf
    assert abs(ssim_y(img, img) - 1) < 1e-12
    mid = img * 0.5 + 0.25  # no clipping below
    shifted = mid + 10 / (65.481 + 128.553 + 24.966)
    assert abs(psnr_y(shifted, mid) - 10 * math.log10(255**2 / 100)) < 0.2  # Y moves by 10 levels
    assert float(rgb_to_y(torch.zeros(3, 1, 1))) >= 16
    assert float(rgb_to_y(torch.ones(3, 1, 1))) <= 235.01
    damaged = img.clone()
    damaged[:, :3, :] = 0  # only the border: shaved off with border=3
    assert psnr_y(damaged, img, border=3) == math.inf
    assert psnr_y(damaged, img) < 30
    assert ssim_y(blur(img, gaussian_kernel(2, 2, 0, 11)), img, border=2) < 0.95


def test_hard_patterns_are_varied_reproducible_inputs():
    make = losses.hard_patterns
    x = make(64, 3, 12, 20, torch.Generator().manual_seed(5))
    assert x.shape == (64, 3, 12, 20)
    assert float(x.min()) >= 0
    assert float(x.max()) <= 1
    assert torch.equal(x, make(64, 3, 12, 20, torch.Generator().manual_seed(5)))
    assert not torch.equal(x, make(64, 3, 12, 20, torch.Generator().manual_seed(6)))
    distinct = [len(torch.unique(s)) for s in x]
    assert 1 in distinct  # flat fields
    assert min(d for d in distinct if d > 1) <= 6  # boards, lines and binary noise: a few levels
    assert max(distinct) > 500  # noise
    grey = [bool((s[0] == s[1]).all() and (s[1] == s[2]).all()) for s in x]
    assert any(grey)
    assert not all(grey)
    assert float((x[:, :, :, 1:] - x[:, :, :, :-1]).abs().amax(dim=(1, 2, 3)).max()) >= 0.5  # 1-px contrast


def test_out_of_range_counts_only_the_excess():
    pred = torch.tensor([-1.0, -0.5, 0.5, 1.5, 2.0], requires_grad=True)
    term = losses.out_of_range(pred, -0.5, 1.5)
    assert float(term) == pytest.approx((0.25 + 0.25) / 5)
    term.backward()
    assert pred.grad.tolist() == pytest.approx([-0.2, 0, 0, 0, 0.2])
    assert float(losses.out_of_range(torch.rand(2, 3, 8, 8), -0.5, 1.5)) == 0
