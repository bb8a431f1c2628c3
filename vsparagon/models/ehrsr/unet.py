"""EHR-SR's multi-scale (MSG) encoder and decoder: NAF-style blocks, strided downs, pixel-shuffle ups.

Level ``l`` (0 = full resolution) has ``dim * 2**l`` channels; the encoder keeps each level's
output as a skip, the decoder upsamples and merges it back through a learned gate (the seed's
optional "lightweight attention gate" on skips), starting at 1 so the skip passes whole at first.
Every size here is even: the model pads its input to a multiple of ``2**levels`` first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vsparagon.models.ehrsr.common import LayerNorm2d, NoiseInjection


class NAFBlock(nn.Module):
    """NAFNet's block: a gated depthwise spatial mixer with simplified channel attention, then a gated FFN.

    Both halves are residual with a learned per-channel scale (starting at 0, so a fresh block is
    the identity); dropout sits inside both.
    """

    def __init__(self, dim: int, *, dropout: float) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(dim)
        self.expand = nn.Conv2d(dim, 2 * dim, 1)
        self.local = nn.Conv2d(2 * dim, 2 * dim, 3, padding=1, groups=2 * dim)
        self.channel_attention = nn.Conv2d(dim, dim, 1)
        self.project = nn.Conv2d(dim, dim, 1)
        self.norm2 = LayerNorm2d(dim)
        self.ffn_expand = nn.Conv2d(dim, 2 * dim, 1)
        self.ffn_project = nn.Conv2d(dim, dim, 1)
        self.drop = nn.Dropout(dropout)
        self.beta = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        a, b = self.local(self.expand(self.norm1(x))).chunk(2, dim=1)
        y = a * b  # SimpleGate
        y = y * self.channel_attention(y.mean(dim=(2, 3), keepdim=True))  # global pooling: picture-wide context
        x = x + self.beta * self.drop(self.project(y))
        a, b = self.ffn_expand(self.norm2(x)).chunk(2, dim=1)
        return x + self.gamma * self.drop(self.ffn_project(a * b))


class Level(nn.Module):
    """A stack of NAF blocks at one resolution, with optional noise injection in front."""

    def __init__(self, dim: int, *, blocks: int, dropout: float, noise: bool) -> None:
        super().__init__()
        self.noise = NoiseInjection(dim) if noise else nn.Identity()
        self.blocks = nn.Sequential(*(NAFBlock(dim, dropout=dropout) for _ in range(blocks)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        return self.blocks(self.noise(x))


class Encoder(nn.Module):
    """Full resolution down to ``H / 2**levels``: per level a :class:`Level`, then a stride-2 2x2 conv (x2 channels)."""

    def __init__(self, dim: int, *, levels: int, blocks: int, dropout: float, noise: bool) -> None:
        super().__init__()
        widths = [dim * 2**level for level in range(levels + 1)]
        self.levels = nn.ModuleList(Level(w, blocks=blocks, dropout=dropout, noise=noise) for w in widths[:-1])
        self.downs = nn.ModuleList(nn.Conv2d(w, 2 * w, 2, stride=2) for w in widths[:-1])

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``(B, dim, H, W)`` -> (skips at H, H/2, ..., the ``(B, dim * 2**levels, H / 2**levels, ...)`` map)."""
        skips = []
        for level, down in zip(self.levels, self.downs, strict=True):
            x = level(x)
            skips.append(x)
            x = down(x)
        return skips, x


class Up(nn.Module):
    """Halve the channels and double the size (1x1 conv + pixel shuffle), then merge the skip through a gate."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.up = nn.Conv2d(dim, 2 * dim, 1)
        self.gate = nn.Conv2d(dim // 2, dim // 2, 1)
        nn.init.zeros_(self.gate.weight)
        nn.init.zeros_(self.gate.bias)  # type: ignore[arg-type]  # created with a bias

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:  # (B, C, h, w) -> (B, C/2, 2h, 2w)
        x = F.pixel_shuffle(self.up(x), 2)
        return x + skip * (2.0 * torch.sigmoid(self.gate(x)))  # the gate starts at exactly 1


class Decoder(nn.Module):
    """The encoder mirrored: per level, an :class:`Up` merging the skip, then a :class:`Level`."""

    def __init__(self, dim: int, *, levels: int, blocks: int, dropout: float, noise: bool) -> None:
        super().__init__()
        widths = [dim * 2**level for level in range(levels, 0, -1)]  # coarse to fine, before each up
        self.ups = nn.ModuleList(Up(w) for w in widths)
        self.levels = nn.ModuleList(Level(w // 2, blocks=blocks, dropout=dropout, noise=noise) for w in widths)

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:  # -> (B, dim, H, W)
        for up, level, skip in zip(self.ups, self.levels, reversed(skips), strict=True):
            x = level(up(x, skip))
        return x


__all__ = ["Decoder", "Encoder", "Level", "NAFBlock", "Up"]
