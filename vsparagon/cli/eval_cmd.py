"""``paragon eval``: PSNR/SSIM of a model, bicubic and lanczos on a folder of HR pictures."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from vsparagon.cli.extras import require


def add_parser(commands: Any) -> None:
    """Register ``eval`` on the ``paragon`` subcommand parser."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "eval",
        help="score a model against bicubic and lanczos on HR pictures",
        description=(
            "Downscale every HR picture in DIR by bicubic, upscale it back with MODEL, bicubic and lanczos, and "
            "print PSNR and SSIM on Y (border = scale) per picture and on average."
        ),
    )
    parser.add_argument(
        "model",
        help="a .onnx or .safetensors file, another project's .pth/.ckpt, or a shipped variant (tiny, xs, ...)",
    )
    parser.add_argument("folder", type=Path, metavar="DIR", help="folder of HR pictures")
    parser.add_argument("--scale", type=int, default=2, help="for a shipped variant: 1-4 (default 2)")
    parser.add_argument("--backend", default="auto", help="runtime backend (default auto)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads; 0 = all")
    parser.add_argument(
        "--lr-codec",
        metavar="CODEC:CRF",
        help="also compress each LR picture, e.g. h264:30 or hevc:28, to score models on video-like input",
    )
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``paragon eval``."""
    require("paragon eval", "train")
    from vsparagon.tools import evaluate

    lr_codec = evaluate.parse_codec(args.lr_codec) if args.lr_codec else None
    results = evaluate.evaluate(
        args.model, args.folder, scale=args.scale, backend=args.backend, threads=args.threads, lr_codec=lr_codec
    )
    if args.json:
        print(json.dumps([{"picture": r.name, "size": r.size, **r.scores} for r in results], indent=2))
    else:
        print(evaluate.table(results))
    return 0
