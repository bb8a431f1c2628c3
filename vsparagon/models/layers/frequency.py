"""Frequency separation by a blockwise 8x8 DCT, written as fixed-kernel convolutions.

The forward transform is a stride-``block`` convolution whose ``block**2`` kernels are the
orthonormal DCT-II basis images; the inverse is the transposed convolution with the same kernels
(orthonormal, so the transpose is the inverse). Both are plain ``Conv``/``ConvTranspose`` nodes in
ONNX, independent of the picture size, so the graph runs on ONNX Runtime, OpenVINO and TensorRT
alike (TensorRT has no DFT op, which is why a DFT was not used). The picture is padded to a
multiple of the block by edge replication inside the module and cropped back; the pad amounts are
computed from the traced shape, so an exported graph takes any size.

Bands are indexed ``u * block + v`` (``u`` vertical, ``v`` horizontal frequency); a band is "low"
when ``u + v < cutoff``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def dct_basis(block: int = 8) -> torch.Tensor:
    """The orthonormal 2-D DCT-II basis as ``(block**2, 1, block, block)`` conv kernels."""
    n = torch.arange(block, dtype=torch.float64)
    scale = torch.full((block,), math.sqrt(2.0 / block), dtype=torch.float64)
    scale[0] = math.sqrt(1.0 / block)
    basis_1d = scale[:, None] * torch.cos(math.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * block))  # (k, n)
    basis_2d = basis_1d[:, None, :, None] * basis_1d[None, :, None, :]  # (u, v, y, x)
    return basis_2d.reshape(block * block, 1, block, block).float()


def low_band_mask(block: int, cutoff: int) -> torch.Tensor:
    """``(block**2,)`` 1.0 for the bands with ``u + v < cutoff``, else 0.0."""
    u, v = torch.meshgrid(torch.arange(block), torch.arange(block), indexing="ij")
    return ((u + v) < cutoff).float().flatten()


class BlockDCT(nn.Module):
    """Per-channel blockwise DCT and its inverse, for ``channels`` planes."""

    def __init__(self, channels: int, *, block: int = 8) -> None:
        super().__init__()
        if block < 2:
            raise ValueError(f"a DCT block of {block} pixels has no frequencies; use 2 or more (8 is usual)")
        self.channels, self.block = channels, block
        # (C * block**2, 1, block, block): channel c's band k is output channel c * block**2 + k.
        self.register_buffer("kernels", dct_basis(block).repeat(channels, 1, 1, 1), persistent=False)
        self.kernels: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C * block**2, ceil(H/b), ceil(W/b))
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (-w) % self.block, 0, (-h) % self.block), mode="replicate")
        return F.conv2d(x, self.kernels.to(x.dtype), stride=self.block, groups=self.channels)

    def inverse(self, coefficients: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """``(B, C * block**2, h, w)`` coefficients -> the ``(B, C, height, width)`` picture (cropped)."""
        x = F.conv_transpose2d(
            coefficients, self.kernels.to(coefficients.dtype), stride=self.block, groups=self.channels
        )
        return x[..., :height, :width]


class BandScale(nn.Module):
    """A learned gain per (channel, DCT band), clamped to ``[0, max_gain]`` (starts at 1: identity).

    The clamp bounds how much any frequency can be amplified: the guard against ringing.
    """

    def __init__(self, channels: int, bands: int, *, max_gain: float = 1.5) -> None:
        super().__init__()
        if not max_gain >= 1.0:
            raise ValueError(f"max_gain={max_gain} would forbid the identity; use 1.0 or more")
        self.max_gain = float(max_gain)
        self.gain = nn.Parameter(torch.ones(channels * bands))

    def forward(self, coefficients: torch.Tensor) -> torch.Tensor:  # (B, C * bands, h, w), same shape out
        gain = self.gain.clamp(0.0, self.max_gain).to(coefficients.dtype)
        return coefficients * gain.view(1, -1, 1, 1)


class FrequencySplit(nn.Module):
    """Split a picture into low and high frequencies (blockwise DCT), each with a learned band gain.

    ``low + high == x`` while the gains are 1 (at initialisation, and whenever ``gated=False``).
    """

    def __init__(
        self, channels: int, *, block: int = 8, cutoff: int = 3, gated: bool = True, max_gain: float = 1.5
    ) -> None:
        super().__init__()
        if not 1 <= cutoff <= 2 * block - 2:
            raise ValueError(
                f"cutoff={cutoff} leaves one side empty; use 1..{2 * block - 2} for {block}x{block} blocks"
            )
        self.dct = BlockDCT(channels, block=block)
        self.register_buffer(
            "low_mask", low_band_mask(block, cutoff).repeat(channels).view(1, -1, 1, 1), persistent=False
        )
        self.low_mask: torch.Tensor
        self.gate = BandScale(channels, block * block, max_gain=max_gain) if gated else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (B, C, H, W) -> 2 x (B, C, H, W)
        h, w = x.shape[-2:]
        coefficients = self.dct(x)
        if self.gate is not None:
            coefficients = self.gate(coefficients)
        mask = self.low_mask.to(coefficients.dtype)
        low = self.dct.inverse(coefficients * mask, h, w)
        high = self.dct.inverse(coefficients * (1.0 - mask), h, w)
        return low, high


__all__ = ["BandScale", "BlockDCT", "FrequencySplit", "dct_basis", "low_band_mask"]
