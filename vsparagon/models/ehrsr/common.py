"""Small pieces EHR-SR's blocks share: channel norm, gated FFN, stochastic depth, noise injection."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel of a ``(B, C, H, W)`` map (a per-pixel operation)."""

    def __init__(self, dim: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        mean = x.mean(dim=1, keepdim=True)
        centred = x - mean
        var = centred.pow(2).mean(dim=1, keepdim=True)
        y = centred * torch.rsqrt(var + self.eps)
        return y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch for whole samples while training (identity in eval)."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = float(rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = torch.empty(x.shape[0], *([1] * (x.dim() - 1)), dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask / keep


class NoiseInjection(nn.Module):
    """StyleGAN2-style texture noise: ``x + strength * n``, ``n`` one N(0, 1) plane per sample.

    ``strength`` is a learned scalar per channel starting at 0. Training forwards only: in eval
    mode (inference, export) the block is the identity, so inference stays deterministic.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        return x + self.strength * torch.randn_like(x[:, :1])


class GatedFFN(nn.Module):
    """GDFN-style feed-forward: ``1x1 -> depthwise 3x3 -> gelu(a) * b -> dropout -> 1x1``."""

    def __init__(self, dim: int, *, expansion: float, dropout: float) -> None:
        super().__init__()
        hidden = max(1, round(dim * expansion))
        self.expand = nn.Conv2d(dim, 2 * hidden, 1)
        self.local = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden)
        self.drop = nn.Dropout(dropout)
        self.project = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        a, b = self.local(self.expand(x)).chunk(2, dim=1)
        return self.project(self.drop(F.gelu(a) * b))


__all__ = ["DropPath", "GatedFFN", "LayerNorm2d", "NoiseInjection"]
