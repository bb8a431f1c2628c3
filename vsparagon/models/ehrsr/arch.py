"""EHR-SR's configuration and the whole network (stem, encoder, hybrid trunk, decoder, head).

Pure PyTorch: nothing here knows about runtimes, files or VapourSynth. The choices the seed left
open are listed in the package docstring (:mod:`vsparagon.models.ehrsr`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vsparagon.errors import ConfigError
from vsparagon.models.ehrsr.stem import RepGatedStem
from vsparagon.models.ehrsr.trunk import EXPERT_DILATIONS, HybridTrunk
from vsparagon.models.ehrsr.unet import Decoder, Encoder

#: Encoder depths accepted: the trunk (attention, scan) runs at H/4 (2) or H/8 (3), never finer (seed section 4).
LEVELS = (2, 3)


@dataclass(frozen=True, kw_only=True)
class EHRSRConfig:
    """Hyperparameters of one EHR-SR network."""

    dim: int
    """Feature channels at full resolution; level ``l`` has ``dim * 2**l`` (the trunk ``dim * 2**levels``)."""
    scale: int = 2
    """Upscaling factor."""
    in_channels: int = 3
    """Input planes."""
    out_channels: int = 3
    """Output planes; must equal ``in_channels`` (the global skip adds the upsampled input)."""
    levels: int = 2
    """Encoder/decoder depth: the trunk runs at ``H / 2**levels`` (2: H/4, 3: H/8)."""
    enc_blocks: int = 1
    """NAF blocks at each encoder level."""
    dec_blocks: int = 1
    """NAF blocks at each decoder level."""
    trunk_blocks: int = 2
    """Hybrid stages in the trunk (shifted windows on every second one)."""
    window: int = 8
    """Side of the attention windows, in trunk pixels (``window * 2**levels`` input pixels)."""
    heads: int = 4
    """Attention heads; must divide the trunk width ``dim * 2**levels``."""
    ffn_expansion: float = 2.0
    """Hidden width of the gated FFNs and texture experts relative to their input."""
    ssm_state: int = 8
    """State size of the selective scan's recurrence."""
    ssm_directions: int = 2
    """Scan directions: 2 (row-major both ways) or 4 (row- and column-major both ways)."""
    experts: int = 3
    """Texture experts in each mixture (2 to 4)."""
    top_k: int = 2
    """Experts each token is routed to (softmax over the k best, the rest exactly 0); 0 = all (plain softmax)."""
    freq_block: int = 8
    """DCT block side of the frequency separation, in trunk pixels."""
    freq_cutoff: int = 3
    """DCT bands with ``u + v < freq_cutoff`` count as low frequency."""
    repmix_kernel: int = 7
    """Kernel of RepMix's depthwise large-kernel conv (odd)."""
    use_ssm: bool = True
    """Include the selective-scan block in each trunk stage (ablation switch)."""
    use_moe: bool = True
    """Include the texture-expert mixture in each trunk stage (ablation switch)."""
    use_frequency: bool = True
    """Include the frequency-separation block in each trunk stage (ablation switch)."""
    noise: bool = False
    """Per-stage noise injection with learned strengths (training forwards only; off by default: it
    trades PSNR for generated texture)."""
    drop_path: float = 0.05
    """Stochastic depth of the last trunk stage's residual branches (earlier stages: linearly less)."""
    dropout: float = 0.0
    """Dropout inside the FFNs, NAF blocks and experts (training only)."""
    balance_weight: float = 0.01
    """Weight of each mixture's load-balancing loss (added to the training loss by ``paragon train``)."""
    entropy_weight: float = 0.01
    """Weight of each mixture's router-entropy loss."""

    @property
    def multiple(self) -> int:
        """The model pads its input to a multiple of this inside (the encoder halves the size ``levels`` times)."""
        return int(2**self.levels)


def check_config(cfg: EHRSRConfig) -> None:
    """Reject settings the network cannot be built with, naming the bad value and the accepted ones.

    Raises:
        ConfigError: the first bad field.
    """
    trunk = cfg.dim * cfg.multiple
    problems = [
        (cfg.dim >= 1, f"dim={cfg.dim} must be >= 1"),
        (cfg.levels in LEVELS, f"levels={cfg.levels} must be one of {LEVELS} (the trunk runs at H/4 or H/8)"),
        (
            cfg.in_channels == cfg.out_channels,
            f"out_channels={cfg.out_channels} must equal in_channels={cfg.in_channels}",
        ),
        (cfg.enc_blocks >= 0 and cfg.dec_blocks >= 0, "enc_blocks and dec_blocks must be >= 0"),
        (cfg.trunk_blocks >= 1, f"trunk_blocks={cfg.trunk_blocks} must be >= 1"),
        (cfg.window >= 2, f"window={cfg.window} must be >= 2"),
        (cfg.heads >= 1 and trunk % cfg.heads == 0, f"heads={cfg.heads} must divide the trunk width {trunk}"),
        (cfg.ffn_expansion > 0, f"ffn_expansion={cfg.ffn_expansion} must be > 0"),
        (cfg.ssm_state >= 1, f"ssm_state={cfg.ssm_state} must be >= 1"),
        (cfg.ssm_directions in (2, 4), f"ssm_directions={cfg.ssm_directions} must be 2 or 4"),
        (2 <= cfg.experts <= len(EXPERT_DILATIONS), f"experts={cfg.experts} must be 2..{len(EXPERT_DILATIONS)}"),
        (0 <= cfg.top_k <= cfg.experts, f"top_k={cfg.top_k} must be 0 (all) or 1..experts={cfg.experts}"),
        (cfg.freq_block >= 2, f"freq_block={cfg.freq_block} must be >= 2"),
        (
            1 <= cfg.freq_cutoff <= 2 * cfg.freq_block - 2,
            f"freq_cutoff={cfg.freq_cutoff} must be 1..{2 * cfg.freq_block - 2}",
        ),
        (
            cfg.repmix_kernel >= 3 and cfg.repmix_kernel % 2 == 1,
            f"repmix_kernel={cfg.repmix_kernel} must be odd and >= 3",
        ),
        (0.0 <= cfg.drop_path < 1.0 and 0.0 <= cfg.dropout < 1.0, "drop_path and dropout must be in [0, 1)"),
        (cfg.balance_weight >= 0 and cfg.entropy_weight >= 0, "balance_weight and entropy_weight must be >= 0"),
    ]
    for ok, message in problems:
        if not ok:
            raise ConfigError(f"ehrsr: {message}")


class EHRSR(nn.Module):
    """EHR-SR: stem -> encoder -> hybrid trunk -> decoder (+ skips) -> PixelShuffle head, over a bilinear global skip.

    Any input size works: the input is padded (edge replication) to a multiple of ``2**levels``
    inside, and the output cropped back to ``(H * scale, W * scale)``.
    """

    def __init__(self, cfg: EHRSRConfig, *, variant: str = "custom") -> None:
        super().__init__()
        check_config(cfg)
        self.cfg, self.variant = cfg, variant
        dim, trunk = cfg.dim, cfg.dim * cfg.multiple
        self.stem = RepGatedStem(cfg.in_channels, dim)
        self.encoder = Encoder(dim, levels=cfg.levels, blocks=cfg.enc_blocks, dropout=cfg.dropout, noise=cfg.noise)
        self.trunk = HybridTrunk(trunk, cfg)
        self.decoder = Decoder(dim, levels=cfg.levels, blocks=cfg.dec_blocks, dropout=cfg.dropout, noise=cfg.noise)
        self.head = nn.Conv2d(dim, cfg.out_channels * cfg.scale**2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H*s, W*s)
        height, width = x.shape[2], x.shape[3]
        m, s = self.cfg.multiple, self.cfg.scale
        padded = F.pad(x, (0, (m - width % m) % m, 0, (m - height % m) % m), mode="replicate")
        x0 = self.stem(padded)  # skip-0
        skips, deep = self.encoder(x0)
        features = self.decoder(self.trunk(deep), skips) + x0
        up = F.interpolate(padded, scale_factor=float(s), mode="bilinear", align_corners=False)
        out = up + F.pixel_shuffle(self.head(features), s)
        return out[:, :, : height * s, : width * s]


__all__ = ["EHRSR", "LEVELS", "EHRSRConfig", "check_config"]
