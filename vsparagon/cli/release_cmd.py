"""``paragon release``: a training run's newest state -> fused model, ONNX fp32/fp16 and a model card."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vsparagon.cli.extras import require


def add_parser(commands: Any) -> None:
    """Register ``release`` on the ``paragon`` subcommand parser."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "release",
        help="turn a training run into a shippable model with its model card",
        description=(
            "Take the newest checkpoint of RUN (a `paragon train --out` folder) or a training-state file, fuse its "
            "EMA weights and write NAME.safetensors, NAME.onnx, NAME_fp16.onnx (parity-checked), NAME.md (the model "
            "card, with the `paragon eval` table on the validation folders) and the training curves into OUT."
        ),
    )
    parser.add_argument("source", type=Path, metavar="RUN", help="run folder or state_*.safetensors file")
    parser.add_argument("--out", type=Path, required=True, help="destination folder (e.g. models)")
    parser.add_argument("--name", help="file stem (default: the run name, e.g. paragonsr_tiny_x2)")
    parser.add_argument(
        "--val",
        type=Path,
        action="append",
        help="HR picture folder for the quality table (repeatable; default: the run's validation folders)",
    )
    parser.add_argument(
        "--lr-codec",
        action="append",
        metavar="CODEC:CRF",
        help="also score with compressed LR, e.g. h264:30 (repeatable; see paragon eval)",
    )
    parser.add_argument("--notes", type=Path, help="a Markdown file appended to the card as its Notes section")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for the evaluation; 0 = all")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``paragon release``."""
    require("paragon release", "train")
    from vsparagon.tools.release import release_run

    notes = args.notes.read_text(encoding="utf-8") if args.notes else ""
    from vsparagon.tools.evaluate import parse_codec

    codecs = [parse_codec(c) for c in args.lr_codec or []]
    done = release_run(
        args.source, args.out, name=args.name, val=args.val, notes=notes, threads=args.threads, lr_codecs=codecs
    )
    for folder, q in done.quality.items():
        print(
            f"{folder}: model {q['model_psnr']:.3f} dB, bicubic {q['bicubic_psnr']:.3f} dB, "
            f"lanczos {q['lanczos_psnr']:.3f} dB (Y PSNR)"
        )
    print(f"step {done.step}: wrote {done.weights}, {done.onnx}, {done.onnx_fp16}, {done.card}")
    return 0
