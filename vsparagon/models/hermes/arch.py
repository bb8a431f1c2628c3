"""The HERMES network: conditioning, dual streams, frequency split, fusion, experts, MSG, trunk, head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vsparagon.models.hermes.blocks import local_mean
from vsparagon.models.hermes.conditioning import DegradationToken, KernelPrior
from vsparagon.models.hermes.config import HermesConfig
from vsparagon.models.hermes.experts import DeblurExpert, GenerativeExpert, StructureExpert, TextureExpert
from vsparagon.models.hermes.fusion_blocks import FusionBlock
from vsparagon.models.hermes.multiscale import MSGBlock
from vsparagon.models.hermes.streams import GlobalBlock, PartialLargeKernelBlock
from vsparagon.models.layers.experts import MixtureOfExperts, Router
from vsparagon.models.layers.frequency import FrequencySplit
from vsparagon.models.layers.reparam import RepConv2d


class Hermes(nn.Module):
    """HERMES-IR/SR: ``(B, C, H, W) -> (B, C', H*s, W*s)``, any H and W (padded and cropped inside).

    See the package docstring for the data flow and the choices the seed left open.
    """

    def __init__(self, cfg: HermesConfig, *, variant: str = "custom") -> None:
        super().__init__()
        self.cfg, self.variant = cfg, variant
        dim, stride = cfg.dim, cfg.trunk_stride
        #: The input is padded to a multiple of this: whole trunk pixels at every MSG level.
        self.multiple = stride * 2**cfg.msg_levels

        self.shallow = RepConv2d(cfg.in_channels, dim, 3, aux_kernels=(1,))
        self.kernel_prior = KernelPrior(cfg.in_channels, cfg.kernel_dim, stride=stride)
        self.to_trunk = nn.Conv2d(dim * stride * stride, dim, 1)
        self.token = DegradationToken(cfg.kernel_dim, dim, cfg.token_dim)

        self.local_in, self.global_in = nn.Conv2d(dim, dim, 1), nn.Conv2d(dim, dim, 1)
        self.local_blocks = nn.ModuleList(
            PartialLargeKernelBlock(dim, kernel_dim=cfg.kernel_dim, large_kernel=cfg.large_kernel)
            for _ in range(cfg.stream_blocks)
        )
        self.global_blocks = nn.ModuleList(
            GlobalBlock(dim, state=cfg.ssm_state, use_ssm=cfg.use_ssm, large_kernel=cfg.large_kernel)
            for _ in range(cfg.stream_blocks)
        )
        self.split: FrequencySplit | None = None
        if cfg.use_frequency:
            self.split = FrequencySplit(cfg.in_channels)
            band = cfg.in_channels * stride * stride
            self.high_proj, self.low_proj = nn.Conv2d(band, dim, 1), nn.Conv2d(band, dim, 1)

        self.fusion = nn.ModuleList(
            FusionBlock(dim, heads=cfg.heads, window=cfg.window, shift=i % 2 == 1) for i in range(cfg.fusion_blocks)
        )
        texture = TextureExpert(dim, heads=cfg.heads, window=cfg.window)
        self.experts: nn.Module
        if cfg.use_moe:
            experts: list[nn.Module] = [
                texture,
                StructureExpert(dim, state=cfg.ssm_state, use_ssm=cfg.use_ssm, large_kernel=cfg.large_kernel),
                DeblurExpert(dim, kernel_dim=cfg.kernel_dim),
            ]
            if cfg.use_generative:
                experts.append(GenerativeExpert(dim, token_dim=cfg.token_dim, noise=cfg.generative_noise))
            router = Router(
                dim, len(experts), top_k=cfg.top_k, temperature=cfg.router_temperature, context_dim=cfg.token_dim
            )
            self.experts = MixtureOfExperts(
                experts, router, balance_weight=cfg.balance_weight, entropy_weight=cfg.entropy_weight
            )
        else:
            self.experts = texture
        self.msg = MSGBlock(dim, levels=cfg.msg_levels) if cfg.msg_levels else None
        self.from_trunk = nn.Conv2d(dim, dim * stride * stride, 1)

        self.trunk = nn.ModuleList(
            RepConv2d(dim, dim, 3, aux_kernels=(1,), identity=True) for _ in range(cfg.trunk_blocks)
        )
        self.head = RepConv2d(dim, cfg.out_channels * cfg.scale**2, 3, aux_kernels=(1,))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C', H*s, W*s)
        cfg, stride = self.cfg, self.cfg.trunk_stride
        height, width = x.shape[2], x.shape[3]
        # Pad amounts come from the traced shape, so an exported graph stays size-independent.
        x = F.pad(x, (0, (-width) % self.multiple, 0, (-height) % self.multiple), mode="replicate")

        shallow = self.shallow(x)  # (B, C, H, W)
        k = self.kernel_prior(x)  # (B, Ck, h, w), h = H / stride
        trunk = self.to_trunk(F.pixel_unshuffle(shallow, stride))  # (B, C, h, w)
        g = self.token(k, trunk)  # (B, Cg)

        local, glob = self.local_in(trunk), self.global_in(trunk)
        for block in self.local_blocks:
            local = block(local, k)
        for block in self.global_blocks:
            glob = block(glob)
        cue = local
        if self.split is not None:
            low, high = self.split(x)  # (B, 3, H, W) each
            cue = self.high_proj(F.pixel_unshuffle(high, stride))
            local = local + cue
            glob = glob + self.low_proj(F.pixel_unshuffle(low, stride))
        for fusion in self.fusion:
            local, glob = fusion(local, glob)

        if isinstance(self.experts, MixtureOfExperts):
            mixed = self.experts(local, glob, k, cue, g, routing=local_mean(local), context=g)
        else:
            mixed = self.experts(local, glob, k, cue, g)
        if self.msg is not None:
            mixed = self.msg(mixed)
        features = shallow + F.pixel_shuffle(self.from_trunk(mixed + local), stride)

        for rep in self.trunk:
            features = F.gelu(rep(features))
        residual = F.pixel_shuffle(self.head(features + shallow), cfg.scale)
        up = F.interpolate(x, scale_factor=cfg.scale, mode="bilinear", align_corners=False)
        return (up + residual)[:, :, : height * cfg.scale, : width * cfg.scale]


__all__ = ["Hermes", "HermesConfig"]
