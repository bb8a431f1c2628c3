"""HERMES-IR/SR (seed 004); its variant table lives in :mod:`vsparagon.catalogue.table`.

Data flow (``s`` = ``trunk_stride``; the input is first padded by edge replication to a multiple
of ``s * 2**msg_levels`` and the output cropped back)::

    shallow = RepConv3x3(x)                                   # (B, C, H, W)   full resolution
    k       = KernelPrior(x)                                  # (B, Ck, H/s, W/s)
    T       = 1x1(space_to_depth(shallow, s))                 # (B, C, H/s, W/s) the trunk
    g       = MLP(mean k, mean T)                             # (B, Cg) global degradation token
    L       = PLKBlock^N1(1x1(T), k);  G = SSMBlock^N1(1x1(T))
    low, high = DCTSplit(x);  L += 1x1(s2d(high));  G += 1x1(s2d(low))
    L, G    = FusionBlock^N2(L, G)                            # cross gates, shifted windows, GDFN
    F       = sum_e w_e E_e(L, G, k, high, g),  w = top2(Router(mean3x3(L), g))
    F       = MSG(F)
    feat    = shallow + depth_to_space(1x1(F + L), s)
    y       = bilinear_up(x) + PixelShuffle(RepConv(RepTrunk(feat) + shallow))

Choices the seed left open (issue 16 asks for them in writing):

* **Resolution.** The streams, fusion blocks, experts and MSG run at ``1/trunk_stride`` of the
  input (space-to-depth in, depth-to-space out); only the shallow conv, the re-parameterizable
  trunk and the head run at full resolution. The seed runs everything at full size, which is far
  too slow on a CPU; tiny uses stride 4, base stride 2.
* **Kernel prior.** Two 3x3 convs on the space-to-depth picture, ``kernel_dim`` features per
  trunk pixel; no explicit kernel is estimated and no kernel loss is used (nothing to supervise
  it with in our data). It shifts every local-stream block and modulates the deblur expert.
* **Global token.** Mean of ``k`` and of the trunk features, through a 2-layer MLP. It feeds the
  router (as a context vector) and styles the generative expert (the "prompts").
* **Streams.** The seed's two ``Conv(3->C)`` become two 1x1s from one shared trunk embedding.
  PLK block: a quarter of the channels through a dense ``large_kernel`` conv (RepConv with a 3x3
  branch), a 1x1 mix, a shift from ``k``, a sigmoid gate. SSM block: pre-norm residual around
  :class:`~vsparagon.models.layers.selective_scan.SelectiveScan2d` (2 directions, float32 scan).
* **Frequency split.** A blockwise 8x8 DCT on the input picture (not an rFFT): stride-8 conv and
  transposed conv with fixed kernels, so it runs on ONNX Runtime, OpenVINO (both tested) and
  TensorRT (Conv/ConvTranspose/Pad/Slice only; not run here, no GPU). Bands with ``u + v < 3``
  are "low". Spectral gating is one learned gain per (channel, band), clamped to ``[0, 1.5]``;
  the gain bound and the anti-ringing loss (:mod:`vsparagon.models.hermes.losses`) are the
  ringing safeguards. The high part also gates the texture expert.
* **Fusion block.** G gates L per channel from G's spatial mean; L gates G per pixel with a
  depthwise 3x3; both gates are ``2 sigmoid(.)`` initialised to exactly 1. Then pre-norm window
  attention on L (shifted on odd blocks) and the gated depthwise FFN on L, with a bounded
  ``a * sigmoid(b)`` gate (fp16-safe). G only changes through its gate.
* **Experts and router.** Dense mixture (every expert runs, weights multiply), top-2 via
  ``topk``/``scatter`` in the graph; per trunk pixel. Router input: the 3x3 local mean of L
  ("pooled local features") plus a linear map of ``g``. E1 texture: conv, window attention, gate
  from the high band. E2 structure: an SSM block on G, then a learned clamped blend towards the
  3x3 local mean (low-frequency emphasis). E3 deblur: per-pixel scale/shift from ``k``, a
  depthwise 7x7 and two 3x3 convs. E4 generative: StyleGAN2 modulated/demodulated 3x3 conv
  styled by ``g``, plus one noise map with a learned per-channel amplitude clamped to
  ``[0, 0.1]``, added only in training forwards with ``generative_noise``; never in eval/export.
  Losses: Switch-style load balance and ``log E - H(mean routing probability)`` (anti-collapse),
  as auxiliary losses that training adds; expert usage is recorded each training forward.
* **MSG.** One (``msg_levels``) nested stride-2 conv down, gated conv, 1x1 + PixelShuffle up,
  added through a sigmoid gate of the finer level.
* **Output.** ``y = bilinear_up(x) + residual`` (the seed's ``x_upsampled``); no IGConv.
* **Ablations.** ``use_ssm=False``: depthwise ``large_kernel`` convs replace every scan.
  ``use_moe=False``: the texture expert alone, unrouted. ``use_frequency=False``: no DCT split;
  the texture expert's cue is L. ``use_generative=False``: three experts.
"""

from __future__ import annotations

from vsparagon.catalogue.table import HERMES as CATALOGUE
from vsparagon.errors import ConfigError
from vsparagon.models.entry import ArchEntry, describe_global
from vsparagon.models.hermes.arch import Hermes
from vsparagon.models.hermes.config import HermesConfig

#: Trunk strides the architecture accepts (space-to-depth factors).
TRUNK_STRIDES = (1, 2, 4)
#: Whether the network stays finite in fp16 on every stress pattern (tests/models/test_hermes.py measures it).
FP16_SAFE = True


def validate(cfg: HermesConfig) -> None:
    """Reject configs the network cannot be built or run with, naming the fix."""
    experts = 3 + cfg.use_generative
    rules = [
        (cfg.dim >= 4, f"dim={cfg.dim} is too small; use 4 or more (32 for tiny)"),
        (cfg.heads >= 1 and cfg.dim % cfg.heads == 0, f"heads={cfg.heads} must divide dim={cfg.dim}"),
        (cfg.trunk_stride in TRUNK_STRIDES, f"trunk_stride={cfg.trunk_stride}; use one of {TRUNK_STRIDES}"),
        (cfg.window >= 2, f"window={cfg.window} is too small for shifted windows; use 2 or more (8 is usual)"),
        (cfg.large_kernel >= 3 and cfg.large_kernel % 2 == 1, f"large_kernel={cfg.large_kernel} must be odd and >= 3"),
        (0 <= cfg.msg_levels <= 3, f"msg_levels={cfg.msg_levels}; use 0..3"),
        (1 <= cfg.top_k <= experts, f"top_k={cfg.top_k}; use 1..{experts} (the experts this config builds)"),
        (cfg.router_temperature > 0, f"router_temperature={cfg.router_temperature} must be positive"),
        (
            min(cfg.stream_blocks, cfg.fusion_blocks, cfg.trunk_blocks) >= 0,
            "stream_blocks, fusion_blocks and trunk_blocks must be >= 0",
        ),
        (min(cfg.kernel_dim, cfg.token_dim, cfg.ssm_state) >= 1, "kernel_dim, token_dim and ssm_state must be >= 1"),
        (
            cfg.in_channels == cfg.out_channels,
            f"in_channels={cfg.in_channels} != out_channels={cfg.out_channels}: "
            "the output adds the upscaled input, so they must match",
        ),
    ]
    for ok, message in rules:
        if not ok:
            raise ConfigError(f"hermes: {message}")


describe = describe_global(CATALOGUE.name, fp16_safe=FP16_SAFE)


ENTRY = ArchEntry(name=CATALOGUE.name, module=Hermes, config=HermesConfig, describe=describe, validate=validate)

__all__ = ["ENTRY", "FP16_SAFE", "TRUNK_STRIDES", "Hermes", "HermesConfig", "describe", "validate"]
