"""``paragon compare``: before/after crops of models on frames of a real clip, as one PNG.

Each row is one frame; the columns are the source crop (enlarged by pixel repetition, so
its compression artefacts stay visible), bicubic, and each model. Crops are taken where
the frame has the most detail (highest local variance) unless a position is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vsparagon.errors import InputError


@dataclass(frozen=True)
class Panel:
    """One compared method: a label and its ``(3, H*s, W*s)`` output for a frame."""

    label: str
    image: np.ndarray  # uint8 (H, W, 3)


def read_frames(clip: Path, indices: list[int]) -> list[np.ndarray]:
    """Decode the frames ``indices`` (0-based) of ``clip`` as RGB uint8 arrays."""
    try:
        import av
    except ImportError as exc:
        raise InputError(f"paragon compare needs PyAV: pip install 'vsparagon[train]' ({exc})") from None
    if not clip.is_file():
        raise InputError(f"{clip}: no such video file")
    wanted, found = set(indices), {}
    try:
        with av.open(str(clip)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i in wanted:
                    found[i] = frame.to_ndarray(format="rgb24")
                if len(found) == len(wanted):
                    break
    except av.error.FFmpegError as exc:
        raise InputError(f"{clip}: not a readable video ({exc})") from None
    missing = sorted(wanted - set(found))
    if missing:
        raise InputError(f"{clip}: has no frame {missing[0]} (it has {len(found) and max(found) + 1} or fewer)")
    return [found[i] for i in indices]


def busiest(frame: np.ndarray, size: tuple[int, int]) -> tuple[int, int]:
    """Top-left corner of the ``size`` (h, w) window with the most detail (local variance of luma)."""
    h, w = size
    y = torch.from_numpy(frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[None, None]
    if y.shape[2] < h or y.shape[3] < w:
        raise InputError(f"the frame ({y.shape[3]}x{y.shape[2]}) is smaller than the crop ({w}x{h})")
    mean = F.avg_pool2d(y, 3, 1, 1)
    detail = F.avg_pool2d((y - mean).abs(), (h, w), stride=8)
    idx = int(detail.flatten().argmax())
    cols = detail.shape[3]
    return (idx // cols) * 8, (idx % cols) * 8


def compare(
    clip: Path,
    models: list[tuple[str, str]],
    out: Path,
    *,
    scale: int,
    frames: list[int],
    crop: tuple[int, int] = (96, 128),
    at: tuple[int, int] | None = None,
    zoom: int = 2,
    threads: int = 0,
) -> Path:
    """Write the comparison PNG; ``models`` is a list of ``(label, model file or shipped variant)``."""
    from PIL import Image, ImageDraw

    from vsparagon.tools.sessions import open_named

    if not models:
        raise InputError("give at least one --model LABEL=FILE")
    if not out.parent.is_dir():
        raise InputError(f"output folder {out.parent} does not exist")
    sessions = []
    for label, name in models:
        sessions.append((label, open_named(name, scale=scale, threads=threads)[1]))

    rows = []
    for rgb in read_frames(clip, frames):
        y0, x0 = at if at is not None else busiest(rgb, crop)
        ch, cw = crop
        if y0 + ch > rgb.shape[0] or x0 + cw > rgb.shape[1]:
            raise InputError(f"crop {cw}x{ch} at {x0},{y0} leaves the {rgb.shape[1]}x{rgb.shape[0]} frame")
        x = torch.from_numpy(rgb).permute(2, 0, 1).float().div(255)[None]
        panels = [Panel("source (pixels repeated)", rgb.repeat(scale, 0).repeat(scale, 1))]
        bicubic = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)[0].clamp(0, 1)
        panels.append(Panel("bicubic", _u8(bicubic)))
        for label, session in sessions:
            out_t = torch.from_numpy(np.asarray(session.run(x.numpy()), dtype=np.float32)[0]).clamp(0, 1)
            panels.append(Panel(label, _u8(out_t)))
        sy, sx, sh, sw = y0 * scale, x0 * scale, ch * scale, cw * scale
        tiles = []
        for p in panels:
            tile = Image.fromarray(np.ascontiguousarray(p.image[sy : sy + sh, sx : sx + sw]))
            tile = tile.resize((sw * zoom, sh * zoom), Image.Resampling.NEAREST)
            draw = ImageDraw.Draw(tile)
            draw.rectangle((0, 0, 8 + 7 * len(p.label), 16), fill=(0, 0, 0))
            draw.text((4, 3), p.label, fill=(255, 255, 255))
            tiles.append(tile)
        rows.append(tiles)

    gap = 4
    tw, th = rows[0][0].size
    sheet = Image.new("RGB", (len(rows[0]) * (tw + gap) - gap, len(rows) * (th + gap) - gap), (255, 255, 255))
    for r, tiles in enumerate(rows):
        for c, tile in enumerate(tiles):
            sheet.paste(tile, (c * (tw + gap), r * (th + gap)))
    sheet.save(out, optimize=True)
    return out


def _u8(img: torch.Tensor) -> np.ndarray:
    return (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


__all__ = ["busiest", "compare", "read_frames"]
