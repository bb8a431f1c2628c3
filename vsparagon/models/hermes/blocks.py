"""Small pieces the HERMES modules share: a per-pixel channel norm, the gated FFN, cross-stream gates."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of each pixel of a ``(B, C, H, W)`` map."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        mean = x.mean(dim=1, keepdim=True)
        centred = x - mean
        var = (centred * centred).mean(dim=1, keepdim=True)
        return centred * torch.rsqrt(var + self.eps) * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class GatedDepthwiseFFN(nn.Module):
    """GDFN-style feed-forward: ``1x1 -> depthwise 3x3 -> a * sigmoid(b) -> 1x1``.

    The gate is bounded (sigmoid), so the output grows at most linearly with the input: no
    squaring as with ``gelu(a) * b``, which keeps fp16 inference finite.
    """

    def __init__(self, dim: int, *, expansion: float = 2.0) -> None:
        super().__init__()
        hidden = max(1, int(dim * expansion))
        self.expand = nn.Conv2d(dim, 2 * hidden, 1)
        self.local = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden)
        self.project = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        a, b = self.local(self.expand(x)).chunk(2, dim=1)
        return self.project(a * torch.sigmoid(b))


class ChannelGate(nn.Module):
    """``target * 2 sigmoid(fc(mean_hw(source)))``: one gate per channel from a pooled source (identity at init)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, dim)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:  # 2 x (B, C, H, W) -> (B, C, H, W)
        gate = 2.0 * torch.sigmoid(self.fc(source.mean(dim=(2, 3))))
        return target * gate[:, :, None, None]


class DepthwiseGate(nn.Module):
    """``target * 2 sigmoid(dwconv3x3(source))``: a gate per pixel and channel (identity at init)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        for p in self.conv.parameters():
            nn.init.zeros_(p)

    def forward(self, target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:  # 2 x (B, C, H, W) -> (B, C, H, W)
        return target * (2.0 * torch.sigmoid(self.conv(source)))


def local_mean(x: torch.Tensor, size: int = 3) -> torch.Tensor:
    """Each pixel's mean over a ``size x size`` neighbourhood (borders average what exists)."""
    return F.avg_pool2d(x, size, stride=1, padding=size // 2, count_include_pad=False)


__all__ = ["ChannelGate", "DepthwiseGate", "GatedDepthwiseFFN", "LayerNorm2d", "local_mean"]
