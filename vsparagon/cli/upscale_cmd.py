"""``paragon upscale``: a video file to an upscaled video file, audio and subtitles kept."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from types import FrameType
from typing import Any

from vsparagon.cli.extras import require
from vsparagon.errors import MissingDependencyError


def add_parser(commands: Any) -> None:
    """Register ``upscale`` on the ``paragon`` subcommand parser."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "upscale",
        help="upscale a video file (decode, ParagonSR, encode; audio and subtitles kept)",
        description=(
            "Decode INPUT with bestsource, upscale it with core.paragon.Upscale and encode it with ffmpeg into "
            "OUTPUT, whose extension picks the container (.mkv, .mp4, .m4v, .mov, .webm). Audio and subtitle "
            "streams are copied (converted where the container needs it), colour metadata is kept, progress "
            "goes to stderr. The output appears only when everything succeeded."
        ),
    )
    parser.add_argument("input", type=Path, help="the video file to upscale")
    parser.add_argument("output", type=Path, help="the file to write (overwritten if it exists)")
    parser.add_argument("--variant", default="tiny", help="shipped model: tiny, xs, tiny_video (default tiny)")
    parser.add_argument("--scale", type=int, default=2, help="upscaling factor 1-4 (default 2)")
    parser.add_argument(
        "--model",
        help="a .onnx or .safetensors model, or another project's .pth/.ckpt (zoo extra), instead of a shipped variant",
    )
    parser.add_argument("--backend", default="auto", help="auto, ort-cpu, openvino, torch, ... (default auto)")
    parser.add_argument("--tile", type=int, default=0, help="tile size in input pixels; 0 = automatic")
    parser.add_argument("--encoder", default="x264", help="x264, x265, av1, vp9 or ffv1 (default x264)")
    parser.add_argument("--crf", type=int, help="quality (lower is better); default per encoder: x264 18, x265 20, ...")
    parser.add_argument("--preset", help="encoder speed preset; default per encoder: medium (x264/x265), 8 (av1)")
    parser.add_argument("--frames", metavar="START:END", help="only frames START to END-1 (either may be left out)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``paragon upscale``."""
    require("paragon upscale", "video")
    try:
        from vsparagon.video.pipeline import UpscaleJob, upscale_file
    except ImportError as exc:
        raise MissingDependencyError(
            f"paragon upscale needs VapourSynth and the video extra ({exc.name} is missing): "
            "pip install 'vsparagon[video]'"
        ) from None
    job = UpscaleJob(
        source=args.input,
        output=args.output,
        variant=args.variant,
        scale=args.scale,
        model=args.model,
        backend=args.backend,
        tile=args.tile,
        encoder=args.encoder,
        crf=args.crf,
        preset=args.preset,
        frames=args.frames,
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)  # like Ctrl-C: clean up, then exit
    try:
        result = upscale_file(job)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(
        f"wrote {result.path} ({result.frames} frames, {result.width}x{result.height}, "
        f"{result.seconds:.1f} s, {result.frames / max(result.seconds, 1e-9):.2f} fps)"
    )
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
