"""ParagonSR: residual groups of ParagonBlocks with reparameterizable spatial mixing.

Pure PyTorch: nothing here knows about runtimes, files or VapourSynth.

The network is local and translation-equivariant: it contains only convolutions,
pointwise activations and a pixel shuffle, with no normalization or pooling over
the image, so each output pixel depends only on a window of
``2 * receptive_radius + 1`` input pixels. That is what lets tiled inference equal
whole-frame inference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from vsparagon.errors import InputError
from vsparagon.models.layers.reparam import RepConv2d

#: How a block's feed-forward gates (see :class:`GatedFFN`).
Gate = Literal["gelu", "softcap", "sigmoid", "rmsnorm"]
GATES: tuple[Gate, ...] = ("gelu", "softcap", "sigmoid", "rmsnorm")


@dataclass(frozen=True, kw_only=True)
class ParagonConfig:
    """Hyperparameters of one ParagonSR network."""

    dim: int
    """Feature channels in the body."""
    num_groups: int
    """Residual groups in the body."""
    blocks_per_group: int
    """ParagonBlocks in each residual group."""
    scale: int = 2
    """Upscaling factor (1 = restoration only)."""
    in_channels: int = 3
    """Input planes."""
    out_channels: int = 3
    """Output planes; must equal ``in_channels`` (the nearest-neighbour skip adds the input)."""
    ffn_expansion: float = 2.0
    """Hidden width of the GatedFFN relative to ``dim``."""
    band_kernel: int = 11
    """Length of the horizontal and vertical band kernels of InceptionDWConv2d (odd)."""
    square_kernel: int = 3
    """Size of the square depthwise kernel of InceptionDWConv2d (odd)."""
    branch_ratio: float = 0.25
    """Share of channels given to each of the three depthwise branches (the rest: identity)."""
    layer_scale_init: float = 1e-2
    """Initial residual branch scale; small values keep deep variants stable."""
    gate: Gate = "rmsnorm"
    """The FFN's design. ``gelu``: ``gelu(g) * v``, quadratic in the input and unbounded (the design
    of checkpoint format 1, which blows up on 1-px checkerboards and overflows fp16). The bounded
    designs grow at most linearly with the input, using per-pixel operations only (tiling stays
    exact): ``rmsnorm`` (the default): a per-pixel channel RMSNorm before ``gelu(g) * v``, so the
    FFN's output is bounded whatever its input; ``softcap``: ``gelu(c * tanh(g / c)) * v``;
    ``sigmoid``: ``sigmoid(g) * v``. The comparison that chose the default: docs/block-design.md."""
    gate_cap: float = 4.0
    """``c`` of the ``softcap`` gate: the gate stays in [-0.17, c]."""

    @property
    def receptive_radius(self) -> int:
        """How many input pixels away an input change can still alter an output pixel.

        head conv (3x3) + per block (context band/2 + mixer 3x3) + per group tail
        (3x3) + body tail (3x3) + upsampler conv (3x3); the pixel shuffle adds nothing
        in input pixels.
        """
        context = max(self.band_kernel, self.square_kernel) // 2
        block = context + 1
        group = self.blocks_per_group * block + 1
        return 1 + self.num_groups * group + 1 + 1


class InceptionDWConv2d(nn.Module):
    """Multi-scale depthwise context: square, horizontal band, vertical band and identity.

    Channels are split into four parts; three go through depthwise convs of
    different shapes (each reparameterizable with a smaller parallel kernel) and
    the last passes unchanged.
    """

    def __init__(self, dim: int, *, square_kernel: int, band_kernel: int, branch_ratio: float) -> None:
        super().__init__()
        branch = max(1, int(dim * branch_ratio))
        if 3 * branch >= dim:
            raise ValueError(f"branch_ratio {branch_ratio} leaves no identity channels for dim {dim}")
        self.split_sizes = [dim - 3 * branch, branch, branch, branch]
        small_band = min(3, band_kernel)
        self.square = RepConv2d(branch, branch, square_kernel, groups=branch, aux_kernels=[1], identity=True)
        self.band_w = RepConv2d(
            branch, branch, (1, band_kernel), groups=branch, aux_kernels=[(1, small_band)], identity=True
        )
        self.band_h = RepConv2d(
            branch, branch, (band_kernel, 1), groups=branch, aux_kernels=[(small_band, 1)], identity=True
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        ident, sq, bw, bh = torch.split(x, self.split_sizes, dim=1)
        return torch.cat((ident, self.square(sq), self.band_w(bw), self.band_h(bh)), dim=1)


class ChannelRMSNorm(nn.Module):
    """Per-pixel RMS normalisation over channels, with a learned per-channel gain.

    Statistics are per pixel (never over the image), so tiled output equals whole-frame output.
    """

    def __init__(self, dim: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        rms = torch.sqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)  # (B, 1, H, W)
        return x / rms * self.weight.view(1, -1, 1, 1)


class GatedFFN(nn.Module):
    """Pointwise gated feed-forward: ``out(gate(g) * v)`` with ``g, v`` from one 1x1 conv.

    ``gate`` is one of :data:`GATES` (see :attr:`ParagonConfig.gate`): every design but ``gelu``
    keeps the output linear in ``v``, so a block cannot square a magnitude.
    """

    def __init__(
        self, dim: int, *, expansion: float, layer_scale: float, gate: Gate = "gelu", cap: float = 4.0
    ) -> None:
        super().__init__()
        if gate not in GATES:
            raise ValueError(f"unknown gate {gate!r}; one of {', '.join(GATES)}")
        hidden = max(1, int(dim * expansion))
        self.hidden = hidden
        self.gate = gate
        self.cap = cap
        self.norm = ChannelRMSNorm(dim) if gate == "rmsnorm" else None
        self.proj_in = nn.Conv2d(dim, 2 * hidden, 1)
        self.act = nn.GELU()
        # A 1x1 RepConv with no extra branches: it only exists to fold the layer scale.
        self.proj_out = RepConv2d(hidden, dim, 1, layer_scale=layer_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        if self.norm is not None:
            x = self.norm(x)
        # A static split (not chunk) exports as one Split node with constant sizes.
        gate, value = torch.split(self.proj_in(x), [self.hidden, self.hidden], dim=1)
        if self.gate == "softcap":
            gate = self.act(self.cap * torch.tanh(gate / self.cap))
        elif self.gate == "sigmoid":
            gate = torch.sigmoid(gate)
        else:
            gate = self.act(gate)
        return self.proj_out(gate * value)


class ParagonBlock(nn.Module):
    """Context (InceptionDWConv2d) -> reparameterizable 3x3 mixer, then a GatedFFN; both residual."""

    def __init__(self, cfg: ParagonConfig) -> None:
        super().__init__()
        self.context = InceptionDWConv2d(
            cfg.dim, square_kernel=cfg.square_kernel, band_kernel=cfg.band_kernel, branch_ratio=cfg.branch_ratio
        )
        self.mixer = RepConv2d(
            cfg.dim, cfg.dim, 3, aux_kernels=[1], identity=True, expand=1, layer_scale=cfg.layer_scale_init
        )
        self.ffn = GatedFFN(
            cfg.dim, expansion=cfg.ffn_expansion, layer_scale=cfg.layer_scale_init, gate=cfg.gate, cap=cfg.gate_cap
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        x = x + self.mixer(self.context(x))
        return x + self.ffn(x)


class ResidualGroup(nn.Module):
    """A run of ParagonBlocks closed by a 3x3 conv, with a skip around the whole group."""

    def __init__(self, cfg: ParagonConfig) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*(ParagonBlock(cfg) for _ in range(cfg.blocks_per_group)))
        self.tail = RepConv2d(cfg.dim, cfg.dim, 3, aux_kernels=[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        return x + self.tail(self.blocks(x))


class ParagonSR(nn.Module):
    """The ParagonSR network: head conv, residual groups, pixel-shuffle reconstruction.

    The output adds a nearest-neighbour enlargement of the input, so the body
    learns only the residual detail.
    """

    def __init__(self, cfg: ParagonConfig, *, variant: str = "custom") -> None:
        super().__init__()
        if cfg.in_channels != cfg.out_channels:
            raise ValueError("ParagonSR needs in_channels == out_channels (the skip adds the input)")
        self.cfg = cfg
        self.variant = variant
        s = cfg.scale
        self.head = RepConv2d(cfg.in_channels, cfg.dim, 3, aux_kernels=[1])
        self.groups = nn.Sequential(*(ResidualGroup(cfg) for _ in range(cfg.num_groups)))
        self.body_tail = RepConv2d(cfg.dim, cfg.dim, 3, aux_kernels=[1])
        self.upsample = nn.Sequential(
            RepConv2d(cfg.dim, cfg.out_channels * s * s, 3, aux_kernels=[1]),
            nn.PixelShuffle(s),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Small init for the last conv so a fresh model starts near nearest-neighbour."""
        last = self.upsample[0]
        assert isinstance(last, RepConv2d)
        for conv in [last.main, *last.aux]:
            nn.init.normal_(conv.weight, std=1e-3)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)

    @property
    def scale(self) -> int:
        """Upscaling factor."""
        return self.cfg.scale

    @property
    def receptive_radius(self) -> int:
        """Receptive radius in input pixels (see :attr:`ParagonConfig.receptive_radius`)."""
        return self.cfg.receptive_radius

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, 3, H*s, W*s)
        if not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()):
            self._check_input(x)
        s = self.cfg.scale
        feat = self.head(x)  # (B, C, H, W)
        feat = feat + self.body_tail(self.groups(feat))
        out = self.upsample(feat)  # (B, 3, H*s, W*s)
        if s == 1:
            return out + x
        b, c, h, w = x.shape
        # Nearest-neighbour enlargement: every input pixel repeated s x s times.
        base = x.reshape(b, c, h, 1, w, 1).expand(b, c, h, s, w, s).reshape(b, c, h * s, w * s)
        return out + base

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise InputError(f"ParagonSR expects a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4:
            raise InputError(
                f"ParagonSR expects a 4D tensor (batch, {self.cfg.in_channels}, height, width), "
                f"got shape {tuple(x.shape)}; add a batch axis with x.unsqueeze(0)"
            )
        if x.shape[1] != self.cfg.in_channels:
            raise InputError(
                f"ParagonSR expects {self.cfg.in_channels} input channels (RGB), got {x.shape[1]} "
                f"in shape {tuple(x.shape)}; convert the image to RGB, channels first"
            )
        if not x.is_floating_point():
            raise InputError(f"ParagonSR expects a floating-point tensor in [0, 1], got dtype {x.dtype}")
