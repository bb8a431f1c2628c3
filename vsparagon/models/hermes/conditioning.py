"""Degradation conditioning (seed 004 section 0): the kernel-prior head and the global degradation token."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KernelPrior(nn.Module):
    """A shallow CNN predicting per-pixel degradation (blur kernel) features ``k`` from the picture.

    It reads the picture space-to-depth (``stride x stride`` pixels per trunk pixel), so ``k`` is
    at the trunk's resolution, where the blocks that use it run.
    """

    def __init__(self, in_channels: int, kernel_dim: int, *, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(in_channels * stride * stride, 2 * kernel_dim, 3, padding=1)
        self.conv2 = nn.Conv2d(2 * kernel_dim, kernel_dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, Ck, H/s, W/s)
        return self.conv2(F.gelu(self.conv1(F.pixel_unshuffle(x, self.stride))))


class DegradationToken(nn.Module):
    """``g``: a pooled summary of the kernel prior and the trunk features, through a small MLP."""

    def __init__(self, kernel_dim: int, dim: int, token_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(kernel_dim + dim, token_dim), nn.GELU(), nn.Linear(token_dim, token_dim))

    def forward(
        self, k: torch.Tensor, features: torch.Tensor
    ) -> torch.Tensor:  # (B, Ck, h, w), (B, C, h, w) -> (B, Cg)
        return self.mlp(torch.cat([k.mean(dim=(2, 3)), features.mean(dim=(2, 3))], dim=1))


__all__ = ["DegradationToken", "KernelPrior"]
