"""``paragon eval``: a model against bicubic and lanczos on a folder of HR pictures.

LR inputs are made by bicubic (antialiased) downscaling of each HR picture, cropped
to a multiple of the scale; scores are PSNR and SSIM on Y with ``border = scale``,
as the SR literature reports them. The model runs through the same runtime and tiling
policy as the VapourSynth plugin (:func:`vsparagon.runtime.policy.plan_frame`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vsparagon.errors import InputError
from vsparagon.runtime.policy import DEFAULT_BUDGET_BYTES
from vsparagon.train.data import IMAGE_EXTS
from vsparagon.train.degrade import codec, from_uint8, resize
from vsparagon.train.metrics import psnr_y, ssim_y

METHODS = ("model", "bicubic", "lanczos")


@dataclass(frozen=True)
class Score:
    """One picture's scores, per method: ``{"model": (psnr, ssim), ...}``."""

    name: str
    size: tuple[int, int]
    scores: dict[str, tuple[float, float]]


def pictures(folder: Path) -> list[Path]:
    """HR pictures in ``folder`` (not recursive), sorted by name."""
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder of HR pictures")
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if not found:
        raise InputError(f"{folder}: no pictures found (looked for {', '.join(sorted(IMAGE_EXTS))})")
    return found


def parse_codec(text: str) -> tuple[str, float]:
    """``h264:30`` -> ``("h264", 30.0)`` (``--lr-codec``): codec h264 or hevc, CRF 0-51."""
    name, _, crf = text.partition(":")
    try:
        value = float(crf)
    except ValueError:
        value = -1.0
    if name not in ("h264", "hevc") or not 0 <= value <= 51:
        raise InputError(f"--lr-codec takes h264:CRF or hevc:CRF with CRF 0-51, got {text!r}")
    return name, value


def evaluate(
    model: str,
    folder: Path,
    *,
    scale: int,
    backend: str = "auto",
    threads: int = 0,
    lr_codec: tuple[str, float] | None = None,
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
) -> list[Score]:
    """Score ``model`` (a .onnx/.safetensors file or a shipped variant) on every picture in ``folder``.

    ``lr_codec`` (e.g. ``("h264", 30)``) also compresses each LR picture with that codec and CRF
    (libx264/libx265, 4:2:0, as a short clip; deterministic), as video footage would be.
    ``budget_bytes`` is the inference memory the tiling policy may plan for (as in the plugin).
    """
    from PIL import Image, ImageOps

    from vsparagon.runtime.policy import plan_frame
    from vsparagon.tools.sessions import open_named

    files = pictures(folder)
    src, session = open_named(model, scale=scale, backend=backend, threads=threads)
    s = src.descriptor.scale
    results = []
    for path in files:
        try:
            with Image.open(path) as im:
                pic = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
        except OSError as exc:
            raise InputError(f"{path}: cannot read the picture ({exc})") from None
        h, w = pic.shape[0] // s * s, pic.shape[1] // s * s
        if min(h, w) < 8 * s:
            raise InputError(f"{path}: {pic.shape[1]}x{pic.shape[0]} is too small to evaluate at x{s}")
        hr = from_uint8(pic[:h, :w])
        lr = resize(hr, (h // s, w // s), "bicubic")
        lr_u8 = (lr * 255).round() / 255  # the model sees what an 8-bit LR file would hold
        if lr_codec is not None:
            lr_u8 = codec(lr_u8, lr_codec[0], lr_codec[1], preset="medium", frames=3, rng=np.random.default_rng(0))
            lr_u8 = (lr_u8.clamp(0, 1) * 255).round() / 255
        x = lr_u8.numpy()[None]  # (1, 3, h/s, w/s)
        # The plugin's policy: whole picture when it fits the memory budget, else exact tiles.
        plan = plan_frame(src.descriptor, height=x.shape[2], width=x.shape[3], fp16=False, budget_bytes=budget_bytes)
        sr = plan.run(x[0], session.run, scale=s)
        outputs = {
            "model": torch.from_numpy(np.asarray(sr, dtype=np.float32)).clamp(0, 1),
            "bicubic": F.interpolate(lr_u8[None], scale_factor=s, mode="bicubic", align_corners=False)[0].clamp(0, 1),
            "lanczos": resize(lr_u8, (h, w), "lanczos"),
        }
        scores = {k: (psnr_y(v, hr, border=s), ssim_y(v, hr, border=s)) for k, v in outputs.items()}
        results.append(Score(path.name, (w, h), scores))
    return results


def table(results: list[Score]) -> str:
    """A plain-text table with a mean row."""
    head = f"{'picture':<28} {'size':>10}  " + "  ".join(f"{m + ' PSNR/SSIM':>22}" for m in METHODS)
    lines = [head, "-" * len(head)]
    for r in results:
        cells = "  ".join(f"{r.scores[m][0]:>12.3f} / {r.scores[m][1]:.4f}" for m in METHODS)
        lines.append(f"{r.name[:28]:<28} {r.size[0]:>4}x{r.size[1]:<5}  {cells}")
    means = {
        m: (np.mean([r.scores[m][0] for r in results]), np.mean([r.scores[m][1] for r in results])) for m in METHODS
    }
    cells = "  ".join(f"{means[m][0]:>12.3f} / {means[m][1]:.4f}" for m in METHODS)
    lines.append(f"{'mean (' + str(len(results)) + ' pictures)':<28} {'':>10}  {cells}")
    gain = means["model"][0] - means["bicubic"][0], means["model"][0] - means["lanczos"][0]
    lines.append(f"model - bicubic: {gain[0]:+.3f} dB; model - lanczos: {gain[1]:+.3f} dB (Y PSNR, border = scale)")
    return "\n".join(lines)
