"""HERMES-IR/SR (seed 004): placeholder skeleton, being replaced by the full architecture (issue 16)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True, kw_only=True)
class HermesConfig:
    """Hyperparameters of one HERMES network."""

    dim: int
    """Feature channels."""
    scale: int = 2
    """Upscaling factor."""
    in_channels: int = 3
    """Input planes."""
    out_channels: int = 3
    """Output planes."""


class Hermes(nn.Module):
    """Skeleton: a conv body and a PixelShuffle head over a bilinear skip."""

    def __init__(self, cfg: HermesConfig, *, variant: str = "custom") -> None:
        super().__init__()
        self.cfg, self.variant = cfg, variant
        self.body = nn.Conv2d(cfg.in_channels, cfg.dim, 3, padding=1)
        self.head = nn.Conv2d(cfg.dim, cfg.out_channels * cfg.scale**2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H*s, W*s)
        up = F.interpolate(x, scale_factor=self.cfg.scale, mode="bilinear", align_corners=False)
        return up + F.pixel_shuffle(self.head(F.gelu(self.body(x))), self.cfg.scale)
