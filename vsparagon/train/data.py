"""Training and validation data: HR pictures from folders, videos, LR/HR pairs or a generator.

Sample ``i`` of a run is a pure function of ``(seed, i)``: the source, picture,
crop, flips and degradation are all drawn from a generator seeded with both. So
any worker can make any sample, a resumed run sees exactly the samples it would
have seen, and DDP ranks split a global batch without coordination.
"""

from __future__ import annotations

import logging
import signal
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from vsparagon.errors import ConfigError, MissingDependencyError
from vsparagon.train.config import DataSection, Source
from vsparagon.train.degrade import Pipeline, from_uint8, resize

log = logging.getLogger("vsparagon.train")

IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
VIDEO_EXTS = frozenset({".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".ts", ".y4m", ".mpg"})
MAX_DRAWS = 50  # unreadable pictures are skipped; give up after this many in a row


class DataError(ConfigError):
    """The data cannot feed a run (empty, too small, unreadable)."""


@dataclass(frozen=True)
class Item:
    """One HR picture: a file, a video frame (``time`` in seconds) or a generated picture."""

    kind: str
    path: str
    width: int
    height: int
    time: float = -1.0
    lr_path: str = ""
    index: int = 0
    halve: bool = False


# --------------------------------------------------------------------------- scanning
def scan(source: Source, *, min_side: int, scale: int, seed: int) -> list[Item]:
    """List the usable pictures of ``source``; unreadable or too small ones are skipped with a warning.

    Raises:
        DataError: when nothing usable is left, saying why.
    """
    if source.kind == "synthetic":
        return [
            Item("synthetic", "", source.size, source.size, index=seed * 1_000_003 + i) for i in range(source.count)
        ]
    root = Path(source.path)
    if not root.exists():
        raise DataError(f"data source {root}: does not exist")
    if source.kind == "images":
        items, bad = _scan_images(root, source)
    elif source.kind == "video":
        items, bad = _scan_videos(root, source)
    else:
        items, bad = _scan_pairs(root, Path(source.lr_path), scale, source)
    if bad:
        log.warning("data source %s: skipped %d unreadable file(s): %s", root, len(bad), ", ".join(bad[:5]))
    if not items:
        raise DataError(
            f"data source {root}: no readable {source.kind} found" + (f" ({len(bad)} unreadable)" if bad else "")
        )
    usable = [it for it in items if min(it.width, it.height) >= min_side]
    if len(usable) < len(items):
        log.warning(
            "data source %s: skipped %d picture(s) smaller than the %dx%d HR crop",
            root,
            len(items) - len(usable),
            min_side,
            min_side,
        )
    if not usable:
        largest = max(min(it.width, it.height) for it in items)
        raise DataError(
            f"data source {root}: every picture is smaller than the {min_side}x{min_side} HR crop "
            f"(largest short side: {largest}); lower data.crop to at most {largest // scale}"
        )
    return usable


def _files(root: Path, exts: frozenset[str]) -> list[Path]:
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in exts)


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        orientation = im.getexif().get(0x0112, 1)
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _halve(source: Source, w: int, h: int) -> tuple[int, int, bool]:
    if source.halve_above_mp > 0 and w * h >= source.halve_above_mp * 1e6:
        return w // 2, h // 2, True
    return w, h, False


def _scan_images(root: Path, source: Source) -> tuple[list[Item], list[str]]:
    files = _files(root, IMAGE_EXTS)
    if not files:
        raise DataError(f"data source {root}: no images found (looked for {', '.join(sorted(IMAGE_EXTS))})")
    items, bad = [], []
    for path in files:
        try:
            w, h = _image_size(path)
        except Exception:
            bad.append(path.name)
            continue
        w, h, halve = _halve(source, w, h)
        items.append(Item("images", str(path), w, h, halve=halve))
    return items, bad


def _scan_videos(root: Path, source: Source) -> tuple[list[Item], list[str]]:
    av = _import_av()
    files = _files(root, VIDEO_EXTS)
    if not files:
        raise DataError(f"data source {root}: no videos found (looked for {', '.join(sorted(VIDEO_EXTS))})")
    items, bad = [], []
    for path in files:
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                w, h = stream.codec_context.width, stream.codec_context.height
                duration = _duration(container, stream)
        except Exception:
            bad.append(path.name)
            continue
        if not w or not h or duration <= 0:
            bad.append(path.name)
            continue
        w, h, halve = _halve(source, w, h)
        for k in range(source.frames):
            t = (k + 0.5) / source.frames * duration
            items.append(Item("video", str(path), w, h, time=t, halve=halve))
    return items, bad


def _duration(container: object, stream: object) -> float:
    if getattr(stream, "duration", None) and getattr(stream, "time_base", None):
        return float(stream.duration * stream.time_base)  # type: ignore[attr-defined]
    if getattr(container, "duration", None):
        return float(container.duration) / 1e6  # type: ignore[attr-defined]
    return 0.0


def _scan_pairs(hr_root: Path, lr_root: Path, scale: int, source: Source) -> tuple[list[Item], list[str]]:
    if not lr_root.is_dir():
        raise DataError(f"paired source: LR folder {lr_root} does not exist")
    hr_files = {p.stem: p for p in _files(hr_root, IMAGE_EXTS)}
    lr_files = {p.stem: p for p in _files(lr_root, IMAGE_EXTS)}
    common = sorted(set(hr_files) & set(lr_files))
    if not common:
        raise DataError(f"paired source: no file names in common between {hr_root} and {lr_root}")
    items, bad = [], []
    for stem in common:
        try:
            hw, hh = _image_size(hr_files[stem])
            lw, lh = _image_size(lr_files[stem])
        except Exception:
            bad.append(stem)
            continue
        if (lw * scale, lh * scale) != (hw, hh):
            log.warning("paired source: %s is %dx%d LR for %dx%d HR, not x%d; skipped", stem, lw, lh, hw, hh, scale)
            continue
        items.append(Item("paired", str(hr_files[stem]), hw, hh, lr_path=str(lr_files[stem])))
    return items, bad


def _import_av():  # noqa: ANN202
    try:
        import av
    except ImportError as exc:
        raise MissingDependencyError("video sources need PyAV; install vsparagon[train]") from exc
    return av


# --------------------------------------------------------------------------- loading
class PictureCache:
    """Decoded pictures (uint8 HWC) kept per process, least recently used first out."""

    def __init__(self, limit_mb: int) -> None:
        self.limit = limit_mb * 2**20
        self.used = 0
        self.entries: OrderedDict[tuple[str, str, float], np.ndarray] = OrderedDict()

    def get(self, item: Item, which: str = "hr") -> np.ndarray:
        """The picture of ``item`` (``which="lr"``: its paired LR)."""
        key = (which, item.lr_path if which == "lr" else item.path, item.time if item.kind == "video" else item.index)
        hit = self.entries.get(key)
        if hit is not None:
            self.entries.move_to_end(key)
            return hit
        pic = load_picture(item, which)
        self.entries[key] = pic
        self.used += pic.nbytes
        while self.used > self.limit and len(self.entries) > 1:
            _, old = self.entries.popitem(last=False)
            self.used -= old.nbytes
        return pic


def load_picture(item: Item, which: str = "hr") -> np.ndarray:
    """Decode one picture as uint8 ``(H, W, 3)`` (EXIF orientation applied, halved if asked)."""
    if item.kind == "synthetic":
        return synthetic_picture(item.index, item.width)
    if item.kind == "video":
        pic = _video_frame(item.path, item.time)
    else:
        from PIL import Image, ImageOps

        with Image.open(item.lr_path if which == "lr" else item.path) as im:
            pic = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    if item.halve:
        t = resize(from_uint8(pic), (pic.shape[0] // 2, pic.shape[1] // 2), "area")
        pic = (t.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    return pic


def _video_frame(path: str, time: float) -> np.ndarray:
    av = _import_av()
    with av.open(path) as container:
        stream = container.streams.video[0]
        target = int(time / stream.time_base)
        container.seek(target, stream=stream, backward=True)
        last = None
        for frame in container.decode(stream):
            last = frame
            if frame.pts is not None and frame.pts >= target:
                break
        if last is None:
            raise OSError(f"{path}: no frame decoded at {time:.2f} s")
        return last.to_ndarray(format="rgb24")


def synthetic_picture(index: int, size: int) -> np.ndarray:
    """A generated picture: gradients, shapes, lines and stripes (deterministic in ``index``)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng([index, 7919])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = np.stack(
        [rng.uniform(0, 1) + rng.uniform(-0.5, 0.5) * xx + rng.uniform(-0.5, 0.5) * yy for _ in range(3)], -1
    )
    im = Image.fromarray((base.clip(0, 1) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)

    def colour() -> tuple[int, int, int]:
        return tuple(int(v) for v in rng.integers(0, 256, 3))  # type: ignore[return-value]

    for _ in range(int(rng.integers(6, 16))):
        x0, y0 = (int(v) for v in rng.integers(0, size, 2))
        x1, y1 = x0 + int(rng.integers(4, max(5, size // 2))), y0 + int(rng.integers(4, max(5, size // 2)))
        shape = rng.integers(4)
        if shape == 0:
            draw.rectangle((x0, y0, x1, y1), fill=colour())
        elif shape == 1:
            draw.ellipse((x0, y0, x1, y1), fill=colour(), outline=colour())
        elif shape == 2:
            draw.line((x0, y0, x1, y1), fill=colour(), width=int(rng.integers(1, 4)))
        else:  # a patch of stripes: fine detail to reconstruct
            period = int(rng.integers(2, 6))
            for x in range(x0, x1, period):
                draw.line((x, y0, x, y1), fill=colour(), width=1)
    return np.asarray(im)


# --------------------------------------------------------------------------- datasets
def augment(hr: torch.Tensor, rng: np.random.Generator, *, flip: bool, rot90: bool) -> torch.Tensor:
    """Random flips and 90-degree rotations of a ``(C, H, W)`` tensor (square crops)."""
    if flip and rng.random() < 0.5:
        hr = hr.flip(-1)
    if flip and rng.random() < 0.5:
        hr = hr.flip(-2)
    if rot90:
        hr = torch.rot90(hr, int(rng.integers(4)), dims=(-2, -1))
    return hr


class TrainSamples(Dataset[tuple[torch.Tensor, torch.Tensor, int]]):
    """Sample ``i`` -> ``(lr, hr, unreadable)``; ``unreadable`` counts pictures skipped to make it."""

    def __init__(self, data: DataSection, pipeline: Pipeline, *, scale: int, seed: int) -> None:
        self.data, self.pipeline, self.scale, self.seed = data, pipeline, scale, seed
        hr_side = data.crop * scale
        self.sources = [scan(s, min_side=hr_side, scale=scale, seed=seed + i) for i, s in enumerate(data.train)]
        weights = np.array([s.weight for s in data.train], dtype=np.float64)
        self.weights = weights / weights.sum()
        self.cache = PictureCache(data.cache_mb)
        self.bad: set[Item] = set()

    def __len__(self) -> int:
        return 2**62  # samples are indexed by global position, not by picture

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        rng = np.random.default_rng([self.seed, index])
        crop, s = self.data.crop, self.scale
        skipped = 0
        for _ in range(MAX_DRAWS):
            items = self.sources[int(rng.choice(len(self.sources), p=self.weights))]
            item = items[int(rng.integers(len(items)))]
            if item in self.bad:
                continue
            try:
                pic = self.cache.get(item)
                lr_pic = self.cache.get(item, "lr") if item.kind == "paired" else None
            except Exception as exc:
                self.bad.add(item)
                skipped += 1
                log.warning("skipping unreadable %s (%s)", item.path, str(exc).splitlines()[0] if str(exc) else exc)
                continue
            h, w = pic.shape[:2]
            if lr_pic is not None:  # aligned crops of an existing pair
                y, x = int(rng.integers(h // s - crop + 1)), int(rng.integers(w // s - crop + 1))
                hr = from_uint8(pic[y * s : (y + crop) * s, x * s : (x + crop) * s])
                lr = from_uint8(lr_pic[y : y + crop, x : x + crop])
                both = augment(
                    torch.cat([resize(lr, (hr.shape[-2], hr.shape[-1]), "nearest"), hr]),
                    rng,
                    flip=self.data.flip,
                    rot90=self.data.rot90,
                )
                return both[:3, ::s, ::s].contiguous(), both[3:].contiguous(), skipped
            y, x = int(rng.integers(h - crop * s + 1)), int(rng.integers(w - crop * s + 1))
            hr = augment(
                from_uint8(pic[y : y + crop * s, x : x + crop * s]), rng, flip=self.data.flip, rot90=self.data.rot90
            ).contiguous()
            lr = self.pipeline(hr, (crop, crop), rng) if s > 1 or self.pipeline.steps else hr.clone()
            return lr.contiguous(), hr, skipped
        raise DataError(f"gave up after {MAX_DRAWS} unreadable pictures in a row; check the training data")


class StepBatches(Sampler[list[int]]):
    """Index lists for steps ``start..iters-1``: each step's global batch, split by micro-step and rank."""

    def __init__(self, *, start: int, iters: int, batch: int, accumulate: int, rank: int, world: int) -> None:
        micro = batch // accumulate
        if batch % accumulate or micro % world:
            raise ConfigError(
                f"data.batch={batch} must split into optim.accumulate={accumulate} micro-batches "
                f"across {world} process(es); use a multiple of {accumulate * world}"
            )
        self.start, self.iters, self.batch, self.accumulate = start, iters, batch, accumulate
        self.micro, self.local, self.rank = micro, micro // world, rank

    def __len__(self) -> int:
        return max(0, self.iters - self.start) * self.accumulate

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.iters):
            for m in range(self.accumulate):
                first = step * self.batch + m * self.micro + self.rank * self.local
                yield list(range(first, first + self.local))


@dataclass(frozen=True)
class ValImage:
    """One validation picture: HR and its LR, as ``(3, H, W)`` float tensors."""

    name: str
    hr: torch.Tensor
    lr: torch.Tensor


def validation_set(data: DataSection, *, scale: int, seed: int) -> list[ValImage]:
    """HR pictures centre-cropped to ``val_max_side`` (a multiple of ``scale``) with bicubic LR."""
    out: list[ValImage] = []
    for i, source in enumerate(data.val):
        for item in scan(source, min_side=4 * scale, scale=scale, seed=seed + 1000 + i):
            try:
                pic = load_picture(item)
            except Exception as exc:
                log.warning("validation: skipping unreadable %s (%s)", item.path, exc)
                continue
            side_h = min(pic.shape[0], data.val_max_side) // scale * scale
            side_w = min(pic.shape[1], data.val_max_side) // scale * scale
            y, x = (pic.shape[0] - side_h) // 2, (pic.shape[1] - side_w) // 2
            hr = from_uint8(pic[y : y + side_h, x : x + side_w])
            if item.kind == "paired":
                lr_pic = load_picture(item, "lr")
                lr = from_uint8(lr_pic[y // scale : (y + side_h) // scale, x // scale : (x + side_w) // scale])
            else:
                lr = resize(hr, (side_h // scale, side_w // scale), "bicubic")
            name = Path(item.path).stem if item.path else f"synthetic{item.index}"
            if item.kind == "video":
                name += f"@{item.time:.1f}s"
            out.append(ValImage(name, hr, lr))
    return out


def worker_init(_: int) -> None:
    """One PyTorch thread per data worker (the training process owns the cores); SIGTERM is left to the trainer.

    A service manager's stop (or ``kill`` of the process group) signals the workers too. Had a
    worker died of it, the training process would fail on the lost worker instead of saving the
    current step. The workers end when the trainer's loader shuts down, or when the trainer is gone
    (PyTorch's workers watch their parent).
    """
    torch.set_num_threads(1)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
