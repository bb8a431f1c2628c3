"""HERMES's hyperparameters: sizes (the catalogue's presets set them) and the ablation switches."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class HermesConfig:
    """Hyperparameters of one HERMES network (see the package docstring for what each part is)."""

    dim: int
    """Feature channels everywhere (full-resolution path and trunk)."""
    scale: int = 2
    """Upscaling factor."""
    in_channels: int = 3
    """Input planes."""
    out_channels: int = 3
    """Output planes."""
    trunk_stride: int = 4
    """The dual streams, fusion blocks and experts run at 1/trunk_stride of the input size (1, 2 or 4)."""
    stream_blocks: int = 1
    """Blocks of each stem stream (N1 of the seed): large-kernel blocks locally, SSM blocks globally."""
    fusion_blocks: int = 2
    """Cross-stream fusion blocks (N2 of the seed); the odd ones shift their attention windows."""
    trunk_blocks: int = 2
    """Re-parameterizable conv blocks of the full-resolution residual trunk."""
    heads: int = 2
    """Attention heads of the window attention (must divide ``dim``)."""
    window: int = 8
    """Attention window side, in trunk pixels."""
    large_kernel: int = 13
    """Kernel side of the partial large-kernel convolution of the local stream (odd)."""
    kernel_dim: int = 8
    """Channels of the per-pixel kernel-prior features ``k``."""
    token_dim: int = 32
    """Length of the global degradation token ``g``."""
    ssm_state: int = 8
    """State size of the selective scans."""
    msg_levels: int = 1
    """Nested down/up levels of the multi-scale MSG path (0 turns it off)."""
    top_k: int = 2
    """Experts each trunk pixel is routed to."""
    router_temperature: float = 1.0
    """Divides the router's logits (above 1: softer routing)."""
    balance_weight: float = 0.01
    """Weight of the router's load-balancing loss (an auxiliary loss that training adds)."""
    entropy_weight: float = 0.01
    """Weight of the router's entropy (anti-collapse) loss."""
    use_ssm: bool = True
    """Selective scans in the global stream and the structure expert (False: large depthwise convs instead)."""
    use_moe: bool = True
    """The routed mixture of four experts (False: the texture expert alone, unrouted)."""
    use_frequency: bool = True
    """The DCT low/high split feeding the streams and the texture expert (False: no frequency branch)."""
    use_generative: bool = True
    """Include the generative expert E4 (False: three experts, for fidelity-only training)."""
    generative_noise: bool = True
    """E4 injects noise in training forwards; evaluation and export never do."""
