"""On-the-fly degradations: HR crop -> LR crop.

Every function takes a float32 ``(3, H, W)`` tensor in [0, 1] and a
``numpy.random.Generator`` and returns a new tensor, so a sample's degradation is
a pure function of its seed (workers, resume and DDP all see the same data).

The ``video`` preset follows the spirit of Real-ESRGAN's second-order pipeline
(blur, resize, noise, JPEG, twice) and ends with real H.264/HEVC compression
through PyAV, the artefacts a video upscaler actually meets.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vsparagon.errors import MissingDependencyError
from vsparagon.train.config import (
    BlurStep,
    CodecStep,
    DegradationSection,
    JpegStep,
    Kernel,
    NoiseStep,
    ResizeStep,
    Step,
)

Degrade = Callable[[torch.Tensor, np.random.Generator], torch.Tensor]


# --------------------------------------------------------------------------- primitives
def resize(img: torch.Tensor, size: tuple[int, int], kernel: Kernel) -> torch.Tensor:
    """Resize ``(C, H, W)`` to ``size = (h, w)`` with an antialiased kernel."""
    h, w = size
    if (h, w) == tuple(img.shape[-2:]):
        return img.clone()
    if kernel == "lanczos":
        return _lanczos(img, (h, w))
    x = img.unsqueeze(0)
    if kernel == "area":
        out = (
            F.interpolate(x, size=(h, w), mode="area")
            if h <= img.shape[-2]
            else F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        )
    elif kernel == "nearest":
        out = F.interpolate(x, size=(h, w), mode="nearest-exact")
    else:
        out = F.interpolate(x, size=(h, w), mode=kernel, align_corners=False, antialias=True)
    return out.squeeze(0).clamp_(0, 1)


def _lanczos(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    from PIL import Image

    h, w = size
    planes = [np.asarray(Image.fromarray(p.numpy(), mode="F").resize((w, h), Image.Resampling.LANCZOS)) for p in img]
    return torch.from_numpy(np.stack(planes)).clamp_(0, 1)


def gaussian_kernel(sigma_x: float, sigma_y: float, theta: float, size: int) -> torch.Tensor:
    """A normalized ``size x size`` Gaussian with axis sigmas rotated by ``theta`` radians."""
    r = size // 2
    ys, xs = torch.meshgrid(torch.arange(-r, r + 1.0), torch.arange(-r, r + 1.0), indexing="ij")
    cos, sin = math.cos(theta), math.sin(theta)
    u, v = cos * xs + sin * ys, -sin * xs + cos * ys
    k = torch.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return k / k.sum()


def blur(img: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve each channel with ``kernel`` (reflect padding; the size is kept)."""
    pad = kernel.shape[-1] // 2
    x = img.unsqueeze(0)
    if pad >= min(img.shape[-2:]):
        x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    else:
        x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    weight = kernel.to(img.dtype).expand(img.shape[0], 1, *kernel.shape)
    return F.conv2d(x, weight, groups=img.shape[0]).squeeze(0)


def jpeg(img: torch.Tensor, quality: int) -> torch.Tensor:
    """Round-trip through JPEG at ``quality`` (4:2:0, as cameras and the web do)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(to_uint8(img)).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return from_uint8(np.asarray(Image.open(buf).convert("RGB")))


#: x264's instruction sets up to AVX2 (its ``asm`` option). On CPUs with AVX-512, PyAV's libx264 (x264 picks
#: its AVX-512 kernels by itself) gave a different bitstream for the same clip in 1 encode in 15 to 1 in 800
#: (by run; AMD Zen 4, PyAV 19), so ``paragon eval --lr-codec`` was not repeatable. Capped at AVX2 the output
#: is the same every time, at the same speed.
X264_UP_TO_AVX2 = "MMX2,SSE,SSE2,SSE2Fast,SSE3,SSSE3,SSE4.2,AVX,FMA3,BMI1,BMI2,LZCNT,AVX2"


@functools.cache
def x264_asm() -> str | None:
    """The ``asm`` value for x264: capped at AVX2 where the CPU has AVX-512, else x264's own choice (None).

    Every x86 CPU with AVX-512 also has the AVX2-level sets named in :data:`X264_UP_TO_AVX2`. Where Linux's
    ``/proc/cpuinfo`` cannot be read, the CPU is not known and x264 chooses.
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = next((line.partition(":")[2].split() for line in text.splitlines() if line.startswith("flags")), [])
    return X264_UP_TO_AVX2 if "avx512f" in flags else None


def codec(
    img: torch.Tensor, codec_name: str, crf: float, *, preset: str, frames: int, rng: np.random.Generator
) -> torch.Tensor:
    """Encode a short clip made of ``img`` with small random motion and return its last decoded frame.

    The frames go through libx264/libx265 in 4:2:0, so the result carries real chroma
    subsampling, block, ringing and motion-compensation artefacts.
    """
    try:
        import av
    except ImportError as exc:
        raise MissingDependencyError("codec degradation needs PyAV; install vsparagon[train]") from exc
    _c, h, w = img.shape
    pad_h, pad_w = h % 2, w % 2  # 4:2:0 needs even sizes
    base = F.pad(img.unsqueeze(0), (0, pad_w, 0, pad_h), mode="replicate").squeeze(0) if pad_h or pad_w else img
    clip = [base]
    for _ in range(frames - 1):  # drift by up to 2 pixels per frame
        dy, dx = (int(v) for v in rng.integers(-2, 3, size=2))
        clip.append(torch.roll(clip[-1], shifts=(dy, dx), dims=(1, 2)))
    clip = clip[::-1]  # the last frame is the unshifted crop, coded as an inter frame
    encoder = av.CodecContext.create("libx265" if codec_name == "hevc" else "libx264", "w")
    encoder.width, encoder.height = base.shape[2], base.shape[1]
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = Fraction(1, 25)
    options = {"crf": f"{crf:.1f}", "preset": preset}
    if codec_name == "hevc":
        options["x265-params"] = "log-level=none:pools=1:frame-threads=1:bframes=0"
    else:
        options.update(threads="1", bf="0")
        if (asm := x264_asm()) is not None:
            options["x264-params"] = f"asm={asm}"
    encoder.options = options
    packets = []
    for i, frame in enumerate(clip):
        vf = av.VideoFrame.from_ndarray(to_uint8(frame), format="rgb24").reformat(format="yuv420p")
        vf.pts = i
        packets.extend(encoder.encode(vf))
    packets.extend(encoder.encode(None))
    decoder: Any = av.CodecContext.create(codec_name, "r")
    decoded = []
    for packet in packets:
        decoded.extend(decoder.decode(packet))
    decoded.extend(decoder.decode(None))
    out = from_uint8(decoded[-1].to_ndarray(format="rgb24"))
    return out[:, :h, :w].contiguous()


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` float [0, 1] -> ``(H, W, 3)`` uint8."""
    return (img.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def from_uint8(arr: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> ``(3, H, W)`` float [0, 1]."""
    return torch.from_numpy(np.array(arr, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)


# --------------------------------------------------------------------------- steps
def _uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(lo_hi[0], lo_hi[1])) if lo_hi[1] > lo_hi[0] else float(lo_hi[0])


def _apply_resize(step: ResizeStep, img: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    factor = _uniform(rng, step.factor)
    h, w = img.shape[-2:]
    size = (max(2, round(h * factor)), max(2, round(w * factor)))
    return resize(img, size, step.kernels[int(rng.integers(len(step.kernels)))])


def _apply_blur(step: BlurStep, img: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    sx = _uniform(rng, step.sigma)
    if rng.random() < step.anisotropic:
        sy, theta = _uniform(rng, step.sigma), float(rng.uniform(0, math.pi))
    else:
        sy, theta = sx, 0.0
    size = min(21, 2 * math.ceil(3 * max(sx, sy)) + 1)
    return blur(img, gaussian_kernel(max(sx, 1e-3), max(sy, 1e-3), theta, size))


def _apply_noise(step: NoiseStep, img: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    gray = rng.random() < step.gray
    shape = (1, *img.shape[1:]) if gray else tuple(img.shape)
    if rng.random() < step.poisson_prob:
        peak = 255.0 / max(_uniform(rng, step.poisson), 1e-3)  # photons at full scale
        base = img.mean(0, keepdim=True) if gray else img
        noisy = rng.poisson(base.numpy().astype(np.float64) * peak) / peak
        noise = torch.from_numpy(noisy.astype(np.float32)) - base
    else:
        sigma = _uniform(rng, step.gaussian) / 255.0
        noise = torch.from_numpy(rng.standard_normal(shape).astype(np.float32)) * sigma
    return (img + noise.expand_as(img)).clamp_(0, 1)


def _apply_jpeg(step: JpegStep, img: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    return jpeg(img, round(_uniform(rng, step.quality)))


def _apply_codec(step: CodecStep, img: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    name = step.codecs[int(rng.integers(len(step.codecs)))]
    return codec(img, name, _uniform(rng, step.crf), preset=step.preset, frames=step.frames, rng=rng)


_APPLY: dict[type, Callable[..., torch.Tensor]] = {
    ResizeStep: _apply_resize,
    BlurStep: _apply_blur,
    NoiseStep: _apply_noise,
    JpegStep: _apply_jpeg,
    CodecStep: _apply_codec,
}


def video_preset() -> list[Step]:
    """Second-order real-world pipeline, ending in video-codec compression."""
    return [
        BlurStep(prob=0.8, sigma=(0.2, 2.0)),
        ResizeStep(kernels=["bicubic", "bilinear", "area"], factor=(0.3, 1.2)),
        NoiseStep(prob=0.6, gaussian=(1.0, 12.0), poisson=(0.05, 1.5)),
        JpegStep(prob=0.5, quality=(40.0, 95.0)),
        BlurStep(prob=0.5, sigma=(0.2, 1.2)),
        ResizeStep(kernels=["bicubic", "bilinear", "area"], factor=(0.5, 1.2)),
        NoiseStep(prob=0.4, gaussian=(1.0, 8.0), poisson=(0.05, 1.0)),
        # the final resize to the LR size happens here (see Pipeline), then the codec
        CodecStep(prob=0.9, codecs=["h264", "hevc"], crf=(20.0, 34.0)),
    ]


class Pipeline:
    """A configured degradation: ``pipeline(hr, lr_size, rng) -> lr``.

    Steps run in order; the resize to the exact LR size happens before the first
    compression step (JPEG/codec work at the size the viewer decodes) or at the end.
    """

    def __init__(self, section: DegradationSection) -> None:
        if section.preset == "bicubic":
            steps: Sequence[Step] = []
            self.final_kernels: list[Kernel] = ["bicubic"]
        elif section.preset == "video":
            steps = video_preset()
            self.final_kernels = ["bicubic", "bilinear", "area", "lanczos"]
        else:
            steps = section.steps
            self.final_kernels = list(section.final_kernels)
        self.steps = list(steps)
        codecs = [i for i, s in enumerate(self.steps) if isinstance(s, CodecStep)]
        self.final_at = codecs[-1] if codecs else len(self.steps)
        self.quantize = section.quantize

    def __call__(self, hr: torch.Tensor, lr_size: tuple[int, int], rng: np.random.Generator) -> torch.Tensor:
        img = hr
        for i, step in enumerate([*self.steps, None]):
            if i == self.final_at:
                kernel = self.final_kernels[int(rng.integers(len(self.final_kernels)))]
                img = resize(img, lr_size, kernel)
            if step is None:
                break
            if rng.random() < step.prob:
                img = _APPLY[type(step)](step, img, rng)
        img = img.clamp_(0, 1)
        return img.mul_(255).round_().div_(255) if self.quantize else img
