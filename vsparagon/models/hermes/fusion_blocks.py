"""Cross-stream fusion (seed 004 section 3): cross-gating both ways, shifted-window attention, gated FFN."""

from __future__ import annotations

import torch
from torch import nn

from vsparagon.models.hermes.blocks import ChannelGate, DepthwiseGate, GatedDepthwiseFFN, LayerNorm2d
from vsparagon.models.layers.window_attention import ShiftedWindowAttention


class FusionBlock(nn.Module):
    """One fusion step of the local (L) and global (G) streams.

    1. G gates L per channel (sigmoid of G's pooled summary); L gates G per pixel (depthwise conv);
       both gates start at exactly 1.
    2. ``L += attention(norm(L))`` in windows, shifted by half a window when ``shift``.
    3. ``L += ffn(norm(L))``, the gated depthwise FFN.
    """

    def __init__(self, dim: int, *, heads: int, window: int, shift: bool) -> None:
        super().__init__()
        self.global_to_local = ChannelGate(dim)
        self.local_to_global = DepthwiseGate(dim)
        self.attn_norm = LayerNorm2d(dim)
        self.attn = ShiftedWindowAttention(dim, heads=heads, window=window, shift=shift)
        self.ffn_norm = LayerNorm2d(dim)
        self.ffn = GatedDepthwiseFFN(dim)

    def forward(self, local: torch.Tensor, glob: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # 2 x (B, C, H, W)
        local, glob = self.global_to_local(local, glob), self.local_to_global(glob, local)
        local = local + self.attn(self.attn_norm(local))
        local = local + self.ffn(self.ffn_norm(local))
        return local, glob


__all__ = ["FusionBlock"]
