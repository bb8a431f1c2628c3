"""Image-quality metrics as the SR literature reports them: PSNR and SSIM on Y, border = scale."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def rgb_to_y(img: torch.Tensor) -> torch.Tensor:
    """``(..., 3, H, W)`` RGB in [0, 1] -> ``(..., 1, H, W)`` BT.601 studio-range Y in [0, 255]."""
    r, g, b = img[..., 0:1, :, :], img[..., 1:2, :, :], img[..., 2:3, :, :]
    return 16.0 + 65.481 * r + 128.553 * g + 24.966 * b


def _prepare(pred: torch.Tensor, target: torch.Tensor, border: int) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape != target.shape:
        raise ValueError(f"shape mismatch: {tuple(pred.shape)} vs {tuple(target.shape)}")
    p = rgb_to_y(pred.double().clamp(0, 1)).round()  # as 8-bit pictures would be
    t = rgb_to_y(target.double().clamp(0, 1)).round()
    if border:
        p, t = p[..., border:-border, border:-border], t[..., border:-border, border:-border]
    return p, t


def psnr_y(pred: torch.Tensor, target: torch.Tensor, *, border: int = 0) -> float:
    """PSNR in dB on the Y channel of ``(3, H, W)`` pictures, ``border`` pixels shaved off each side."""
    p, t = _prepare(pred, target, border)
    mse = float(((p - t) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def ssim_y(pred: torch.Tensor, target: torch.Tensor, *, border: int = 0) -> float:
    """SSIM (11x11 Gaussian window, sigma 1.5) on the Y channel, ``border`` shaved off."""
    p, t = _prepare(pred, target, border)
    p, t = p.reshape(1, 1, *p.shape[-2:]), t.reshape(1, 1, *t.shape[-2:])
    x = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(x**2) / (2 * 1.5**2))
    g = g / g.sum()
    w = (g[:, None] * g[None, :]).view(1, 1, 11, 11)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_p, mu_t = F.conv2d(p, w), F.conv2d(t, w)
    spp = F.conv2d(p * p, w) - mu_p**2
    stt = F.conv2d(t * t, w) - mu_t**2
    spt = F.conv2d(p * t, w) - mu_p * mu_t
    ssim = ((2 * mu_p * mu_t + c1) * (2 * spt + c2)) / ((mu_p**2 + mu_t**2 + c1) * (spp + stt + c2))
    return float(ssim.mean())
