"""What a run shows and leaves behind: progress on stderr, a JSONL log, curves and crops as PNG."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from vsparagon.train.degrade import resize, to_uint8


def format_duration(seconds: float) -> str:
    """``3725 -> '1:02:05'``."""
    if not np.isfinite(seconds):
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """A progress line on stderr: step, it/s, samples/s, loss, learning rate, ETA.

    On a terminal it redraws one line; otherwise (logs, CI) it prints a line every
    ``every`` steps.
    """

    def __init__(
        self, total: int, start: int, batch: int, *, every: int, stream: TextIO | None = None, quiet: bool = False
    ) -> None:
        self.total, self.start, self.batch, self.every = total, start, batch, max(1, every)
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.quiet = quiet
        self.t0 = time.perf_counter()
        self.first_step_done: float | None = None  # excludes start-up (workers, first batch) from the rate

    def rate(self, step: int) -> float:
        """Optimizer steps per second since the first step finished."""
        if self.first_step_done is None or step <= self.start + 1:
            return float("nan")
        return (step - self.start - 1) / max(time.perf_counter() - self.first_step_done, 1e-9)

    def update(self, step: int, loss: float, lr: float) -> None:
        """Report that ``step`` (1-based count of finished steps) is done."""
        if self.first_step_done is None:
            self.first_step_done = time.perf_counter()
        if self.quiet or (not self.tty and step % self.every and step != self.total):
            return
        rate = self.rate(step)
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        width = 24
        filled = int(width * step / self.total)
        bar = "#" * filled + "-" * (width - filled)
        line = (
            f"[{bar}] {step}/{self.total} {rate:.2f} it/s {rate * self.batch:.1f} samples/s "
            f"loss {loss:.4g} lr {lr:.2e} ETA {format_duration(eta)}"
        )
        self.stream.write(("\r" + line + "\x1b[K") if self.tty else line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A full line that does not clobber the bar."""
        if self.quiet:
            return
        self.stream.write(("\r\x1b[K" if self.tty else "") + text + "\n")
        self.stream.flush()


class RunLog:
    """Append-only JSONL log of training and validation records."""

    def __init__(self, path: Path, *, resume_step: int) -> None:
        self.path = path
        if path.exists():  # drop records written after the checkpoint we resume from
            kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= resume_step]
            path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        """Append one record."""
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def records(self) -> list[dict[str, Any]]:
        """Everything logged so far."""
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]


def plot_curves(records: list[dict[str, Any]], path: Path, title: str) -> None:
    """Loss and validation PSNR (model vs bicubic) against step, as a PNG."""
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in records if r["kind"] == "train"]
    val = [r for r in records if r["kind"] == "val"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        axes[0].plot([r["step"] for r in train], [r["loss"] for r in train], lw=1)
        axes[0].set_yscale("log")
    axes[0].set(title="training loss", xlabel="step")
    if val:
        steps = [r["step"] for r in val]
        axes[1].plot(steps, [r["psnr"] for r in val], "o-", label="model")
        axes[1].plot(steps, [r["bicubic_psnr"] for r in val], "--", label="bicubic")
        axes[1].legend()
    axes[1].set(title="validation PSNR (Y, dB)", xlabel="step")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def save_crops(
    rows: list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]], scale: int, path: Path, *, side: int = 96
) -> None:
    """Before/after crops, one row per picture: LR (nearest) | bicubic | model | HR, as a PNG."""
    from PIL import Image, ImageDraw

    tiles = []
    for _name, lr, sr, hr in rows:
        h, w = lr.shape[-2:]
        ch, cw = min(side, h), min(side, w)
        y, x = (h - ch) // 2, (w - cw) // 2
        lr_c = lr[:, y : y + ch, x : x + cw]
        big = (ch * scale, cw * scale)
        ys, xs = y * scale, x * scale
        row = [
            resize(lr_c, big, "nearest"),
            resize(lr_c, big, "bicubic"),
            sr[:, ys : ys + big[0], xs : xs + big[1]].clamp(0, 1),
            hr[:, ys : ys + big[0], xs : xs + big[1]],
        ]
        tiles.append(np.concatenate([to_uint8(t) for t in row], axis=1))
    width = max(t.shape[1] for t in tiles)
    grid = np.concatenate([np.pad(t, ((0, 0), (0, width - t.shape[1]), (0, 0))) for t in tiles], axis=0)
    label_h = 16
    canvas = Image.new("RGB", (grid.shape[1], grid.shape[0] + label_h))
    canvas.paste(Image.fromarray(grid), (0, label_h))
    draw = ImageDraw.Draw(canvas)
    col = tiles[0].shape[1] // 4
    for i, label in enumerate(["LR (nearest)", "bicubic", "model", "HR"]):
        draw.text((i * col + 4, 2), label, fill=(255, 255, 255))
    canvas.save(path)


def plot_usage(records: list[dict[str, Any]], path: Path, title: str) -> bool:
    """Each mixture block's expert shares against step (from the ``experts`` field of training records).

    Returns False (and writes nothing) when no record holds expert usage (a model without experts).
    """
    usage = [(r["step"], r["experts"]) for r in records if r["kind"] == "train" and r.get("experts")]
    if not usage:
        return False
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    blocks = list(usage[-1][1])
    cols = min(3, len(blocks))
    rows = -(-len(blocks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
    for ax, block in zip(axes.flat, blocks, strict=False):
        points = [(step, shares) for step, found in usage if (shares := found.get(block)) is not None]
        for e in range(len(points[-1][1])):
            ax.plot([p[0] for p in points], [p[1][e] if e < len(p[1]) else np.nan for p in points], label=f"expert {e}")
        ax.set(title=block, xlabel="step", ylabel="share of tokens", ylim=(0, 1))
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(blocks) :]:
        ax.axis("off")
    fig.suptitle(f"{title}: expert utilisation")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True
