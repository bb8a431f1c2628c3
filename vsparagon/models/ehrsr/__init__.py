"""EHR-SR (seed 003): a hybrid restoration + super-resolution network; its variants live in
:mod:`vsparagon.catalogue.table`.

``input -> stem (RepConv + gated conv) -> MSG encoder (NAF blocks, H/2 .. H/2**levels) -> hybrid trunk
(window attention, selective scan, frequency separation, texture experts, RepMix) -> MSG decoder
(gated skips) + stem features -> PixelShuffle head + bilinear upsampled input``.

Files: :mod:`.arch` (config, checks, the network), :mod:`.stem`, :mod:`.unet` (encoder/decoder),
:mod:`.trunk` (the hybrid stage), :mod:`.common` (norm, FFN, stochastic depth, noise); the shared
layers :mod:`vsparagon.models.layers.window_attention`, :mod:`~vsparagon.models.layers.selective_scan`,
:mod:`~vsparagon.models.layers.experts` and :mod:`~vsparagon.models.layers.frequency`.

Choices the seed left open, and what was chosen:

* **Sizes.** Level ``l`` has ``dim * 2**l`` channels; ``levels`` is 2 (trunk at H/4) or 3 (H/8):
  the seed allows attention and the scan only at H/4 or lower, so ``levels=1`` is refused. Any
  input size works: the input is padded by edge replication to a multiple of ``2**levels`` and
  the output cropped; the window attention and the DCT pad (and crop) to their own multiples.
* **Stem.** A 3x3 :class:`~vsparagon.models.layers.reparam.RepConv2d` (3x3, 1x1 and 1x1-expanded
  3x3 branches) and a gated 3x3 conv ``x + a * sigmoid(g)``; its output is skip-0, added to the
  decoder's output.
* **Encoder/decoder.** NAFNet blocks (LayerNorm, SimpleGate, simplified channel attention with
  global average pooling, zero-initialised residual scales); down by a stride-2 2x2 conv, up by a
  1x1 conv and pixel shuffle; skips merged by addition through a per-pixel gate ``2 sigmoid(1x1)``
  starting at exactly 1 (the seed's optional "lightweight attention gate").
* **Trunk stage order** as the seed's pseudocode: window attention (+ GDFN feed-forward) ->
  selective scan -> frequency separation -> experts -> RepMix, each pre-norm and residual; shifted
  windows on every second stage; the trunk ends with a 3x3 conv around a residual.
* **Selective scan.** Mamba-2 style (one step size and decay per head of 16 channels, shared
  ``B``/``C``), row-major scans forward and backward (``ssm_directions=2``; 4 adds column-major), a
  chunked parallel scan in float32; see :mod:`~vsparagon.models.layers.selective_scan`.
* **Frequency separation.** A blockwise 8x8 DCT written as fixed convolutions (runs on ONNX
  Runtime, OpenVINO and TensorRT; no DFT op is needed) with learned band gains clamped to [0, 1.5];
  the high band is refined (depthwise 3x3 + 1x1), gated by ``sigmoid(1x1(low band))`` and added
  back with a learned per-channel scale clamped to [-1, 1] (starting at 0.1).
* **Experts.** ``experts`` (2-4) texture experts, each a depthwise 3x3 at dilation 1, 2, 3, 1 and a
  gated pointwise FFN; a per-token router (1x1 conv) with softmax over the top ``top_k`` (default
  2, the rest exactly 0; 0 = plain softmax), computed densely with tensor ops so the exported graph
  routes every input afresh; load-balancing and router-entropy losses for training.
* **RepMix.** ``x + 1x1(gelu(dw(x)))`` with ``dw`` a depthwise 7x7 RepConv (7x7 + 3x3 + 1x1 +
  identity), fused into one depthwise conv at deployment.
* **Noise injection** (``noise=True``, off by default): one N(0, 1) plane per sample, scaled by a
  learned per-channel strength (starting at 0), before each encoder, trunk and decoder stage;
  training forwards only. **Stochastic depth** on the trunk's residual branches, rising linearly
  to ``drop_path``; **dropout** inside every FFN, NAF block and expert. Both are off in eval.
* **Head.** A 3x3 conv to ``3 * scale**2`` channels and a pixel shuffle, added to the bilinearly
  upsampled input (the seed's global skip, so the body learns a residual).

The descriptor says the receptive field is global (global pooling, attention across the padded
picture, picture-wide scans): tiles are joined by blending, and the result is approximate.
"""

from __future__ import annotations

from vsparagon.catalogue.table import EHRSR as CATALOGUE
from vsparagon.models.ehrsr.arch import EHRSR, EHRSRConfig, check_config
from vsparagon.models.entry import ArchEntry, describe_global

#: Whether a float16 graph stays finite on the stress patterns (tests/export/test_ehrsr_export.py).
FP16_SAFE = True


describe = describe_global(CATALOGUE.name, fp16_safe=FP16_SAFE)


ENTRY = ArchEntry(name=CATALOGUE.name, module=EHRSR, config=EHRSRConfig, describe=describe, validate=check_config)

__all__ = ["EHRSR", "ENTRY", "FP16_SAFE", "EHRSRConfig", "describe"]
