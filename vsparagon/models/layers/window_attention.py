"""Shifted-window self-attention (Swin-style) on image feature maps, any size.

:class:`ShiftedWindowAttention` maps ``(B, C, H, W)`` to ``(B, C, H, W)``: it pads the map at the
bottom and right to a multiple of the window, optionally rolls it by half a window, runs multi-head
attention inside each ``window x window`` window with a learned relative position bias, and undoes
the roll and the padding. It returns the attention's output only (no residual, no norm, no FFN):
the block around it adds those.

Two masks, built with tensor ops from the padded size so that an ONNX export keeps height and width
dynamic (no Python int taken from a shape), keep the result independent of how the map was cut:

* padded pixels are never keys, so a pixel's output does not depend on the padding;
* after the roll, pixels that wrapped around from the opposite border only attend to each other
  (the usual Swin shift mask, with two regions per axis, which is all a window can straddle).

Masked logits get :data:`MASK_VALUE`, finite and fp16-representable, so a window with no valid key
(only padding) gives a finite value that is cropped away instead of NaN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Added to the logits of masked keys: exp() of it is 0 in fp32 and fp16, and it stays finite in fp16.
MASK_VALUE = -1.0e4


def relative_position_index(window: int) -> torch.Tensor:
    """``(window**2, window**2)`` index into the bias table, for every (query, key) pair of a window."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    delta = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)  # (N, N, 2) in [0, 2w-2]
    return delta[..., 0] * (2 * window - 1) + delta[..., 1]


def to_windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """``(B, C, Hp, Wp)`` (Hp, Wp multiples of ``window``) -> ``(B, nW, window**2, C)``, windows row by row."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // window, window, w // window, window)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, -1, window * window, c)


def from_windows(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    """The inverse of :func:`to_windows`: ``(B, nW, window**2, C)`` -> ``(B, C, height, width)``."""
    b, _, _, c = windows.shape
    x = windows.reshape(b, height // window, width // window, window, window, c)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, c, height, width)


def _pad_amount(size: int, window: int) -> int:
    return (window - size % window) % window


class ShiftedWindowAttention(nn.Module):
    """Multi-head self-attention inside (optionally shifted) windows, with a relative position bias.

    Args:
        dim: channels of the input and output.
        heads: attention heads; must divide ``dim``.
        window: side of the square windows, in pixels (>= 2 when shifting).
        shift: roll the map by ``window // 2`` first (the odd blocks of a Swin pair).
    """

    def __init__(self, dim: int, *, heads: int, window: int, shift: bool) -> None:
        super().__init__()
        if heads < 1 or dim % heads:
            raise ValueError(f"heads={heads} must be a positive divisor of dim={dim}")
        if window < 1 or (shift and window < 2):
            raise ValueError(f"window={window} must be >= 1 (>= 2 with shift=True)")
        self.dim, self.heads, self.window = dim, heads, window
        self.shift = window // 2 if shift else 0
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        self.register_buffer("bias_index", relative_position_index(window), persistent=False)
        self.bias_index: torch.Tensor

    def _labels(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """(1, 1, Hp, Wp) per-pixel region labels of the padded, rolled map; padding is labelled -1.

        Built from ``x`` (already padded and rolled) and the unpadded size, with tensor ops only.
        """
        ones = torch.ones_like(x[:1, :1])  # (1, 1, Hp, Wp)
        rows = torch.cumsum(ones, 2) - 1  # row index of each pixel, as floats
        cols = torch.cumsum(ones, 3) - 1
        hp, wp = x.shape[2], x.shape[3]
        s = self.shift
        # Original (unrolled) coordinates: rolled row i holds original row (i + s) mod Hp.
        orig_r = torch.remainder(rows + s, hp)
        orig_c = torch.remainder(cols + s, wp)
        wrapped = (rows >= hp - s).to(x.dtype) * 2 + (cols >= wp - s).to(x.dtype)  # 0..3 when s > 0
        padded = (orig_r >= height) | (orig_c >= width)
        return torch.where(padded, -torch.ones_like(wrapped), wrapped)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        height, width = x.shape[2], x.shape[3]
        win = self.window
        x = F.pad(x, (0, _pad_amount(width, win), 0, _pad_amount(height, win)))
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(2, 3))
        hp, wp = x.shape[2], x.shape[3]
        labels = to_windows(self._labels(x, height, width), win)[0, :, :, 0]  # (nW, N)
        # Key j is visible from query i when both lie in the same region and j is no padding.
        visible = (labels[:, :, None] == labels[:, None, :]) & (labels[:, None, :] >= 0)  # (nW, N, N)
        mask = torch.where(
            visible, torch.zeros_like(labels[:, :1, None]), torch.full_like(labels[:, :1, None], MASK_VALUE)
        )

        tokens = to_windows(x, win)  # (B, nW, N, C)
        b, n, c = tokens.shape[0], win * win, self.dim
        head_dim = c // self.heads
        qkv = self.qkv(tokens).reshape(b, -1, n, 3, self.heads, head_dim).permute(3, 0, 1, 4, 2, 5)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (B, nW, heads, N, hd)
        logits = (q * self.scale) @ k.transpose(-2, -1)  # (B, nW, heads, N, N)
        bias = self.bias_table[self.bias_index.reshape(-1)].reshape(n, n, self.heads).permute(2, 0, 1)
        logits = logits + bias[None, None] + mask[None, :, None]
        out = torch.softmax(logits, dim=-1) @ v  # (B, nW, heads, N, hd)
        out = self.proj(out.permute(0, 1, 3, 2, 4).reshape(b, -1, n, c))
        y = from_windows(out, win, hp, wp)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(2, 3))
        return y[:, :, :height, :width]


__all__ = ["MASK_VALUE", "ShiftedWindowAttention", "from_windows", "relative_position_index", "to_windows"]
