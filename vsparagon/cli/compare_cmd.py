"""``paragon compare``: before/after crops of models on frames of a real clip, as one PNG."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vsparagon.cli.extras import require
from vsparagon.errors import InputError


def add_parser(commands: Any) -> None:
    """Register ``compare`` on the ``paragon`` subcommand parser."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "compare",
        help="before/after crops of models on frames of a clip (PNG)",
        description=(
            "Upscale frames of CLIP with bicubic and each --model, and write their crops side by side into OUT "
            "(a PNG): one row per frame; the crop is where the frame has the most detail unless --at is given."
        ),
    )
    parser.add_argument("clip", type=Path, metavar="CLIP", help="a video file (e.g. H.264 footage)")
    parser.add_argument("out", type=Path, metavar="OUT", help="the PNG to write")
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="LABEL=MODEL",
        help="a label and a .onnx/.safetensors file or shipped variant (repeatable)",
    )
    parser.add_argument("--scale", type=int, default=2, help="upscaling factor (default 2)")
    parser.add_argument("--frames", default="0", help="comma-separated frame numbers (default 0)")
    parser.add_argument("--crop", default="128x96", help="crop WIDTHxHEIGHT in source pixels (default 128x96)")
    parser.add_argument("--at", help="crop position X,Y in source pixels (default: the most detailed area)")
    parser.add_argument("--zoom", type=int, default=2, help="pixel repetition of the crops in the PNG (default 2)")
    parser.set_defaults(run=run)


def _pair(text: str, sep: str, what: str) -> tuple[int, int]:
    a, _, b = text.partition(sep)
    if not (a.isdigit() and b.isdigit()):
        raise InputError(f"{what} takes two whole numbers separated by {sep!r}, got {text!r}")
    return int(a), int(b)


def run(args: argparse.Namespace) -> int:
    """Execute ``paragon compare``."""
    require("paragon compare", "train")
    from vsparagon.tools.compare import compare

    models = []
    for item in args.model:
        label, sep, model = item.partition("=")
        if not sep or not label or not model:
            raise InputError(f"--model takes LABEL=MODEL, got {item!r}")
        models.append((label, model))
    frames = [int(f) for f in args.frames.split(",") if f.strip().isdigit()]
    if not frames or len(frames) != len(args.frames.split(",")):
        raise InputError(f"--frames takes frame numbers separated by commas, got {args.frames!r}")
    w, h = _pair(args.crop, "x", "--crop")
    if not (8 <= w <= 1024 and 8 <= h <= 1024):
        raise InputError(f"--crop must be 8 to 1024 pixels each way, got {args.crop}")
    at = None
    if args.at:
        x, y = _pair(args.at, ",", "--at")
        at = (y, x)
    if not 1 <= args.zoom <= 8:
        raise InputError(f"--zoom must be 1 to 8, got {args.zoom}")
    path = compare(args.clip, models, args.out, scale=args.scale, frames=frames, crop=(h, w), at=at, zoom=args.zoom)
    print(f"wrote {path}")
    return 0
