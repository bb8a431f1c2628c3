"""The multi-scale MSG path (seed 004 section 5): down, process, up, gated skip, nested ``levels`` deep."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MSGBlock(nn.Module):
    """``x + gate(x) * up(inner(process(down(x))))`` where ``inner`` is the next level (or nothing).

    Needs even sizes at each level: the model pads its input to a multiple of ``2**levels`` trunk
    pixels. The gate (sigmoid of a 1x1 of ``x``) lets each pixel keep its own detail where the
    coarse scale would smooth it.
    """

    def __init__(self, dim: int, *, levels: int) -> None:
        super().__init__()
        self.down = nn.Conv2d(dim, dim, 3, stride=2, padding=1)
        self.process = nn.Conv2d(dim, 2 * dim, 3, padding=1)
        self.inner = MSGBlock(dim, levels=levels - 1) if levels > 1 else None
        self.up = nn.Conv2d(dim, 4 * dim, 1)
        self.gate = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W), H and W even
        a, b = self.process(self.down(x)).chunk(2, dim=1)
        h = a * torch.sigmoid(b)
        if self.inner is not None:
            h = self.inner(h)
        return x + torch.sigmoid(self.gate(x)) * F.pixel_shuffle(self.up(h), 2)


__all__ = ["MSGBlock"]
