"""``paragon export``: a checkpoint (ours, another project's, or a random-init variant) to an ONNX graph."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vsparagon.catalogue import is_foreign_checkpoint
from vsparagon.cli.extras import require
from vsparagon.errors import ConfigError

if TYPE_CHECKING:
    from vsparagon.export import ExportReport

DEFAULT_OPSET = 17  # mirrors vsparagon.export.DEFAULT_OPSET without importing torch


def add_parser(commands: Any) -> None:
    """Register ``export`` on the ``paragon`` subcommand parser."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "export",
        help="write a fused ONNX graph from a checkpoint",
        description=(
            "Fuse a vsparagon checkpoint (ParagonSR, EHR-SR or HERMES) and write it as ONNX with dynamic batch, "
            "height and width, "
            "after checking ONNX Runtime against PyTorch. Either give CHECKPOINT, or --variant/--scale "
            "with --random-init to measure an untrained architecture. Another project's checkpoint "
            "(.pth, .ckpt, .safetensors: ESRGAN, Compact, SPAN, ... as spandrel knows them) is exported "
            "the same way, with its detected descriptor (needs the zoo extra)."
        ),
    )
    parser.add_argument(
        "checkpoint",
        nargs="?",
        type=Path,
        help="a .safetensors file written by vsparagon, or another project's .pth/.ckpt/.safetensors",
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="the .onnx file to write")
    parser.add_argument("--fp16", action="store_true", help="export a float16 graph (float16 input/output)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--variant", help=f"with --random-init: {', '.join(_variants())}")
    parser.add_argument(
        "--scale", type=int, help=f"with --random-init: a scale the variant takes ({'; '.join(_scales())})"
    )
    parser.add_argument("--random-init", action="store_true", help="export an untrained model (for benchmarks)")
    parser.add_argument("--seed", type=int, default=0, help="with --random-init: weight seed (default 0)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``paragon export``."""
    checkpoint: Path | None = args.checkpoint
    variant: str | None = args.variant
    scale: int | None = args.scale
    if args.random_init:
        if checkpoint is not None:
            raise ConfigError("give either CHECKPOINT or --random-init, not both")
        if variant is None or scale is None:
            raise ConfigError("--random-init needs --variant and --scale, e.g. --variant tiny --scale 2")
    else:
        if checkpoint is None:
            raise ConfigError("give a CHECKPOINT file, or --variant V --scale S --random-init for an untrained model")
        if variant is not None or scale is not None:
            raise ConfigError("--variant and --scale go with --random-init; a checkpoint records its own")
    if args.output.suffix.lower() != ".onnx":
        raise ConfigError(f"output {str(args.output)!r} should end in .onnx")

    if checkpoint is not None and checkpoint.is_file() and is_foreign_checkpoint(checkpoint):
        require("paragon export", "zoo")
        from vsparagon.export.foreign import export_foreign

        report = export_foreign(checkpoint, args.output, fp16=args.fp16, opset=args.opset)
        _say_written(report, f"{report.descriptor.config['name']} x{report.descriptor.scale}")
        return 0

    require("paragon export", "export")
    import torch

    from vsparagon import models
    from vsparagon.export import export_onnx

    if checkpoint is not None:
        model = models.load(checkpoint, fused=True)
    elif variant is not None and scale is not None:
        torch.manual_seed(args.seed)
        try:
            model = models.create(variant, scale=scale)
        except ConfigError as exc:
            raise ConfigError(f"--variant {variant} --scale {scale}: {exc}") from None
    else:  # excluded by the checks above
        raise ConfigError("nothing to export")
    report = export_onnx(model, args.output, fp16=args.fp16, opset=args.opset)
    _say_written(report, f"{report.descriptor.variant} x{report.descriptor.scale}")
    return 0


def _say_written(report: ExportReport, what: str) -> None:
    print(
        f"wrote {report.path} ({what}, {report.precision}, opset {report.opset}, "
        f"max |onnxruntime - torch| = {report.max_abs_error:.2e} <= {report.tolerance:g})"
    )
    if report.descriptor.global_context:
        print(
            "note: this model has global context: paragon.Upscale runs it on whole frames when memory allows, "
            "and otherwise joins its tiles with blending (close to, not equal to, the whole-frame result)"
        )


def _variants() -> list[str]:
    """Variant names as ``--variant`` takes them (ParagonSR's without prefix)."""
    from vsparagon.catalogue.table import short_name, variant_names

    return [short_name(v) for v in variant_names()]


def _scales() -> list[str]:
    """Each architecture's scales, e.g. ``ehrsr: 2, 4``."""
    from vsparagon.catalogue.table import ARCHITECTURES

    return [f"{a.name}: {', '.join(map(str, a.scales))}" for a in ARCHITECTURES.values()]
