"""The dual-stream stem: a local partial-large-kernel stream and a global selective-scan stream."""

from __future__ import annotations

import torch
from torch import nn

from vsparagon.models.hermes.blocks import LayerNorm2d
from vsparagon.models.layers.reparam import RepConv2d
from vsparagon.models.layers.selective_scan import SelectiveScan2d


class PartialLargeKernelBlock(nn.Module):
    """PLKSR-style local block, conditioned on the kernel prior ``k``.

    A quarter of the channels go through a dense ``large_kernel`` convolution (re-parameterizable:
    trained with a 3x3 branch beside it, fused into one kernel), the rest pass; a 1x1 mixes them,
    the kernel prior adds a per-pixel shift, and a sigmoid gate from the input decides how much of
    the update to keep.
    """

    def __init__(self, dim: int, *, kernel_dim: int, large_kernel: int) -> None:
        super().__init__()
        self.part = max(1, dim // 4)
        self.norm = LayerNorm2d(dim)
        self.large = RepConv2d(self.part, self.part, large_kernel, aux_kernels=(3,))
        self.mix = nn.Conv2d(dim, dim, 1)
        self.prior = nn.Conv2d(kernel_dim, dim, 1)
        self.gate = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:  # (B, C, H, W), (B, Ck, H, W) -> (B, C, H, W)
        h = self.norm(x)
        wide, rest = h[:, : self.part], h[:, self.part :]
        update = self.mix(torch.cat([self.large(wide), rest], dim=1)) + self.prior(k)
        return x + update * torch.sigmoid(self.gate(h))


class GlobalBlock(nn.Module):
    """``x + mixer(norm(x))`` with a selective scan (``use_ssm``) or, for the ablation, a large depthwise conv."""

    def __init__(self, dim: int, *, state: int, use_ssm: bool, large_kernel: int) -> None:
        super().__init__()
        self.norm = LayerNorm2d(dim)
        self.mixer: nn.Module
        if use_ssm:
            self.mixer = SelectiveScan2d(dim, state=state)
        else:
            self.mixer = nn.Sequential(
                nn.Conv2d(dim, dim, large_kernel, padding=large_kernel // 2, groups=dim), nn.Conv2d(dim, dim, 1)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        return x + self.mixer(self.norm(x))


__all__ = ["GlobalBlock", "PartialLargeKernelBlock"]
