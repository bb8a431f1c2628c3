"""HERMES's four experts (seed 004 section 4), each ``(L, G, k, t, g) -> (B, C, H, W)``.

The inputs, the same for every expert so the mixture can run them all densely:
``L`` and ``G`` the local and global streams ``(B, C, H, W)``, ``k`` the kernel prior
``(B, Ck, H, W)``, ``t`` the texture cue (the high-frequency features; ``L`` itself without the
frequency branch) and ``g`` the global degradation token ``(B, Cg)``. Each expert uses the ones
the seed gives it and ignores the rest.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vsparagon.models.hermes.blocks import LayerNorm2d, local_mean
from vsparagon.models.hermes.streams import GlobalBlock
from vsparagon.models.layers.window_attention import ShiftedWindowAttention

#: Largest per-channel noise amplitude the generative expert can learn (seed: "constrain noise amplitude").
MAX_NOISE = 0.1


class TextureExpert(nn.Module):
    """E1: conv, window attention, then a gate from the high-frequency cue ("FFT-aware gating")."""

    def __init__(self, dim: int, *, heads: int, window: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)
        self.norm = LayerNorm2d(dim)
        self.attn = ShiftedWindowAttention(dim, heads=heads, window=window, shift=False)
        self.cue = nn.Conv2d(dim, dim, 1)

    def forward(
        self, L: torch.Tensor, G: torch.Tensor, k: torch.Tensor, t: torch.Tensor, g: torch.Tensor
    ) -> torch.Tensor:
        h = F.gelu(self.conv(L))
        h = h + self.attn(self.norm(h))
        return h * torch.sigmoid(self.cue(t))


class StructureExpert(nn.Module):
    """E2: a global (SSM) block on G, then low-frequency emphasis: a learned blend towards the local mean."""

    def __init__(self, dim: int, *, state: int, use_ssm: bool, large_kernel: int) -> None:
        super().__init__()
        self.mixer = GlobalBlock(dim, state=state, use_ssm=use_ssm, large_kernel=large_kernel)
        self.smooth = nn.Parameter(torch.full((dim,), 0.5))
        self.out = nn.Conv2d(dim, dim, 1)

    def forward(
        self, L: torch.Tensor, G: torch.Tensor, k: torch.Tensor, t: torch.Tensor, g: torch.Tensor
    ) -> torch.Tensor:
        h = self.mixer(G)
        alpha = self.smooth.clamp(0.0, 1.0).view(1, -1, 1, 1)
        return self.out(h + alpha * (local_mean(h) - h))


class DeblurExpert(nn.Module):
    """E3: kernel-aware conv stack (UFPNet-style): ``k`` gives a per-pixel scale and shift, then two convs."""

    def __init__(self, dim: int, *, kernel_dim: int) -> None:
        super().__init__()
        self.modulation = nn.Conv2d(kernel_dim, 2 * dim, 1)
        for p in self.modulation.parameters():
            nn.init.zeros_(p)
        self.wide = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(
        self, L: torch.Tensor, G: torch.Tensor, k: torch.Tensor, t: torch.Tensor, g: torch.Tensor
    ) -> torch.Tensor:
        scale, shift = self.modulation(k).chunk(2, dim=1)
        h = L * (1.0 + torch.tanh(scale)) + shift
        return self.conv2(F.gelu(self.conv1(self.wide(h))))


class GenerativeExpert(nn.Module):
    """E4: a modulated conv styled by the token ``g`` (StyleGAN2 modulation/demodulation) plus noise.

    The modulation is applied to the input channels and the demodulation to the output channels,
    around one shared conv: equal to a per-sample modulated kernel, and a plain conv in ONNX.
    Noise (one map per pixel, a clamped learned amplitude per channel) is added only in training
    forwards with ``noise=True``: evaluation and export are deterministic.
    """

    def __init__(self, dim: int, *, token_dim: int, noise: bool) -> None:
        super().__init__()
        self.noise = noise
        self.style = nn.Linear(token_dim, dim)
        nn.init.zeros_(self.style.weight)
        nn.init.ones_(self.style.bias)
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, bias=False)
        self.bias = nn.Parameter(torch.zeros(dim))
        self.noise_strength = nn.Parameter(torch.full((dim,), 0.01))
        self.out = nn.Conv2d(dim, dim, 1)

    def forward(
        self, L: torch.Tensor, G: torch.Tensor, k: torch.Tensor, t: torch.Tensor, g: torch.Tensor
    ) -> torch.Tensor:
        style = self.style(g)  # (B, C)
        weight = self.conv.weight  # (O, I, 3, 3)
        # Demodulation: 1 / ||w_o * s||, per sample and output channel.
        energy = torch.einsum("oi,bi->bo", weight.pow(2).sum(dim=(2, 3)), style.pow(2))
        h = self.conv(L * style[:, :, None, None]) * torch.rsqrt(energy + 1e-8)[:, :, None, None]
        if self.noise and self.training:
            amplitude = self.noise_strength.clamp(0.0, MAX_NOISE).view(1, -1, 1, 1)
            h = h + amplitude * torch.randn_like(h[:, :1])
        return self.out(F.gelu(h + self.bias.view(1, -1, 1, 1)))


__all__ = ["MAX_NOISE", "DeblurExpert", "GenerativeExpert", "StructureExpert", "TextureExpert"]
