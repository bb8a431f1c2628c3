"""EHR-SR's hybrid trunk at ``H / 2**levels``: window attention, selective scan, frequency separation,
texture experts and RepMix, each a pre-norm residual block (seed 003, section 3.2).

One :class:`HybridStage` runs them in the seed's order; the trunk stacks ``trunk_blocks`` stages,
alternating unshifted and shifted windows. The ablation switches (``use_ssm``, ``use_frequency``,
``use_moe``) leave the corresponding block out entirely.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from vsparagon.models.ehrsr.common import DropPath, GatedFFN, LayerNorm2d, NoiseInjection
from vsparagon.models.layers.experts import MixtureOfExperts, Router
from vsparagon.models.layers.frequency import FrequencySplit
from vsparagon.models.layers.reparam import Reparameterizable, RepConv2d
from vsparagon.models.layers.selective_scan import SelectiveScan2d
from vsparagon.models.layers.window_attention import ShiftedWindowAttention

if TYPE_CHECKING:
    from vsparagon.models.ehrsr.arch import EHRSRConfig

#: Dilation of each texture expert's depthwise conv: four different reaches (fine texture to smooth areas).
EXPERT_DILATIONS = (1, 2, 3, 1)
#: Bound on the frequency branch's learned scale (the seed's clamp against artifact amplification).
FREQUENCY_SCALE_BOUND = 1.0


class WindowBlock(nn.Module):
    """Swin-style: ``x + attn(norm(x))`` then ``x + ffn(norm(x))`` (GDFN feed-forward)."""

    def __init__(self, dim: int, cfg: EHRSRConfig, *, shift: bool, drop: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = LayerNorm2d(dim), LayerNorm2d(dim)
        self.attention = ShiftedWindowAttention(dim, heads=cfg.heads, window=cfg.window, shift=shift)
        self.ffn = GatedFFN(dim, expansion=cfg.ffn_expansion, dropout=cfg.dropout)
        self.drop = DropPath(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, h, w) -> (B, C, h, w)
        x = x + self.drop(self.attention(self.norm1(x)))
        return x + self.drop(self.ffn(self.norm2(x)))


class ScanBlock(nn.Module):
    """``x + scan(norm(x))``: picture-wide context along scan lines (the scan itself in float32)."""

    def __init__(self, dim: int, cfg: EHRSRConfig, *, drop: float) -> None:
        super().__init__()
        self.norm = LayerNorm2d(dim)
        self.scan = SelectiveScan2d(dim, state=cfg.ssm_state, directions=cfg.ssm_directions)
        self.drop = DropPath(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, h, w) -> (B, C, h, w)
        return x + self.drop(self.scan(self.norm(x)))


class FrequencyBlock(nn.Module):
    """The high-frequency residual, refined and gated, added back with a learned, clamped scale.

    ``low, high = split(norm(x))`` (blockwise DCT, learned band gains clamped to [0, 1.5]);
    ``x + clamp(s) * refine(high) * sigmoid(gate(low))``: the structure (low band) decides where
    texture (high band) is added, and ``s`` (per channel, starting at 0.1) is clamped to
    ``[-FREQUENCY_SCALE_BOUND, FREQUENCY_SCALE_BOUND]``.
    """

    def __init__(self, dim: int, cfg: EHRSRConfig, *, drop: float) -> None:
        super().__init__()
        self.norm = LayerNorm2d(dim)
        self.split = FrequencySplit(dim, block=cfg.freq_block, cutoff=cfg.freq_cutoff)
        self.refine = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1, groups=dim), nn.Conv2d(dim, dim, 1))
        self.gate = nn.Conv2d(dim, dim, 1)
        self.scale = nn.Parameter(torch.full((1, dim, 1, 1), 0.1))
        self.drop = DropPath(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, h, w) -> (B, C, h, w)
        low, high = self.split(self.norm(x))
        branch = self.refine(high) * torch.sigmoid(self.gate(low))
        scale = self.scale.clamp(-FREQUENCY_SCALE_BOUND, FREQUENCY_SCALE_BOUND)
        return x + self.drop(scale * branch)


class TextureExpert(nn.Module):
    """One expert: depthwise 3x3 at its own dilation, then a gated pointwise FFN."""

    def __init__(self, dim: int, *, dilation: int, expansion: float, dropout: float) -> None:
        super().__init__()
        hidden = max(1, round(dim * expansion))
        self.local = nn.Conv2d(dim, dim, 3, padding=dilation, dilation=dilation, groups=dim)
        self.expand = nn.Conv2d(dim, 2 * hidden, 1)
        self.drop = nn.Dropout(dropout)
        self.project = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, h, w) -> (B, C, h, w)
        a, b = self.expand(self.local(x)).chunk(2, dim=1)
        return self.project(self.drop(F.gelu(a) * b))


class ExpertBlock(nn.Module):
    """``x + moe(norm(x))``: per-token routing over 2-4 texture experts, computed densely (exports whole)."""

    def __init__(self, dim: int, cfg: EHRSRConfig, *, drop: float) -> None:
        super().__init__()
        self.norm = LayerNorm2d(dim)
        experts = [
            TextureExpert(dim, dilation=EXPERT_DILATIONS[e], expansion=cfg.ffn_expansion, dropout=cfg.dropout)
            for e in range(cfg.experts)
        ]
        router = Router(dim, cfg.experts, top_k=cfg.top_k or None)
        self.moe = MixtureOfExperts(
            experts, router, balance_weight=cfg.balance_weight, entropy_weight=cfg.entropy_weight
        )
        self.drop = DropPath(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, h, w) -> (B, C, h, w)
        out: torch.Tensor = self.moe(self.norm(x))
        return x + self.drop(out)


class RepMix(Reparameterizable):
    """``x + pw(gelu(dw(x)))`` with ``dw`` a depthwise large-kernel :class:`RepConv2d` (k x k + 3x3 + 1x1
    + identity branches while training). :meth:`fuse` returns :class:`FusedRepMix`, one depthwise conv."""

    def __init__(self, dim: int, *, kernel: int) -> None:
        super().__init__()
        aux = tuple(k for k in (3, 1) if k < kernel)
        self.dw = RepConv2d(dim, dim, kernel, groups=dim, aux_kernels=aux, identity=True)
        self.pw = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, h, w) -> (B, C, h, w)
        return x + self.pw(F.gelu(self.dw(x)))

    @torch.no_grad()
    def fuse(self) -> FusedRepMix:
        fused = FusedRepMix(self.dw.fuse(), copy.deepcopy(self.pw))
        return fused.train(self.training)


class FusedRepMix(nn.Module):
    """The inference form of :class:`RepMix`: ``x + pw(gelu(conv(x)))`` with one depthwise conv."""

    def __init__(self, dw: nn.Conv2d, pw: nn.Conv2d) -> None:
        super().__init__()
        self.dw, self.pw = dw, pw

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, h, w) -> (B, C, h, w)
        return x + self.pw(F.gelu(self.dw(x)))


class HybridStage(nn.Module):
    """noise -> window attention -> selective scan -> frequency separation -> texture experts -> RepMix."""

    def __init__(self, dim: int, cfg: EHRSRConfig, *, shift: bool, drop: float) -> None:
        super().__init__()
        blocks: list[nn.Module] = [NoiseInjection(dim)] if cfg.noise else []
        blocks.append(WindowBlock(dim, cfg, shift=shift, drop=drop))
        if cfg.use_ssm:
            blocks.append(ScanBlock(dim, cfg, drop=drop))
        if cfg.use_frequency:
            blocks.append(FrequencyBlock(dim, cfg, drop=drop))
        if cfg.use_moe:
            blocks.append(ExpertBlock(dim, cfg, drop=drop))
        blocks.append(RepMix(dim, kernel=cfg.repmix_kernel))
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, h, w) -> (B, C, h, w)
        out: torch.Tensor = self.blocks(x)
        return out


class HybridTrunk(nn.Module):
    """``trunk_blocks`` stages (shift on every second one; stochastic depth rising linearly to ``drop_path``),
    then a 3x3 conv, around a residual."""

    def __init__(self, dim: int, cfg: EHRSRConfig) -> None:
        super().__init__()
        n = cfg.trunk_blocks
        self.stages = nn.Sequential(
            *(HybridStage(dim, cfg, shift=i % 2 == 1, drop=cfg.drop_path * (i + 1) / n) for i in range(n))
        )
        self.tail = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, h, w) -> (B, C, h, w)
        return x + self.tail(self.stages(x))


__all__ = [
    "ExpertBlock",
    "FrequencyBlock",
    "FusedRepMix",
    "HybridStage",
    "HybridTrunk",
    "RepMix",
    "ScanBlock",
    "TextureExpert",
    "WindowBlock",
]
