"""EHR-SR's shallow stem: a re-parameterizable conv, then a gated conv (seed 003, section 3.1)."""

from __future__ import annotations

import torch
from torch import nn

from vsparagon.models.layers.reparam import RepConv2d


class GatedConv(nn.Module):
    """``x + a * sigmoid(g)``, with ``(a, g)`` one 3x3 conv of ``x``: a local detail refiner whose gate bounds it."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, 2 * dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        a, g = self.conv(x).chunk(2, dim=1)
        return x + a * torch.sigmoid(g)


class RepGatedStem(nn.Module):
    """Pixels to features: a 3x3 RepConv (3x3 + 1x1 + 1x1-expanded 3x3 branches, one conv after fusion),
    then a :class:`GatedConv`. Its output is the decoder's full-resolution skip (skip-0)."""

    def __init__(self, in_channels: int, dim: int) -> None:
        super().__init__()
        self.embed = RepConv2d(in_channels, dim, 3, aux_kernels=(1,), expand=2)
        self.gated = GatedConv(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, Cin, H, W) -> (B, dim, H, W)
        return self.gated(self.embed(x))


__all__ = ["GatedConv", "RepGatedStem"]
