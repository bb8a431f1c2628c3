"""``paragon train``: a YAML config to resumable checkpoints and a fused release model.

Several processes or machines: ``torchrun --nproc_per_node=N -m vsparagon.cli.main train CONFIG``
(each process takes its share of every global batch; gloo on CPU, NCCL on CUDA).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from vsparagon.cli.extras import require
from vsparagon.errors import ConfigError


def add_parser(commands: Any) -> None:
    """Register ``train`` on the ``paragon`` subcommand parser."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "train",
        help="train a model (ParagonSR, EHR-SR or HERMES) from a YAML config",
        description=(
            "Train a model as CONFIG.yaml describes (paragon train --explain lists every field): ParagonSR, or "
            "a research network (ehrsr_tiny, hermes_tiny, ...; ablations through model.options). "
            "Writes resumable checkpoints, log.jsonl, curves.png and before/after crops into the run folder "
            "(and experts.png, the expert utilisation, for a model with a mixture of experts, whose router "
            "losses are added to the objective by themselves), and at the end the fused release checkpoint and "
            "its ONNX export. Ctrl-C saves the current step."
        ),
    )
    parser.add_argument("config", nargs="?", type=Path, help="the YAML config")
    parser.add_argument("--out", type=Path, help="run folder (default: runs/<name>)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the run folder")
    parser.add_argument("--stop-at", type=int, metavar="STEP", help="save and stop after STEP steps (resume later)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set train.iters=200 (VALUE is YAML); repeatable",
    )
    parser.add_argument("--explain", action="store_true", help="print every config field with its default and meaning")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``paragon train``."""
    require("paragon train", "train")
    import yaml

    from vsparagon.train import config as config_mod

    if args.explain:
        print("\n".join(config_mod.explain()))
        return 0
    if args.config is None:
        raise ConfigError(
            "give a CONFIG.yaml (see examples/train/ and examples/train_*_tiny.yaml), or --explain for the fields"
        )
    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.iters=200")
        overrides[key.strip()] = yaml.safe_load(value)
    cfg = config_mod.load_config(args.config, overrides)
    if args.stop_at is not None and not 1 <= args.stop_at <= cfg.train.iters:
        raise ConfigError(f"--stop-at {args.stop_at}: must be between 1 and train.iters={cfg.train.iters}")
    logging.basicConfig(
        level=logging.INFO,
        format=(f"[rank {os.environ.get('RANK', '0')}] " if "WORLD_SIZE" in os.environ else "") + "%(message)s",
        stream=sys.stderr,
    )
    from vsparagon.train.loop import train

    out = args.out or Path("runs") / cfg.run_name
    # `kill PID` (SIGTERM, what schedulers and shells send to a background job, which starts
    # with Ctrl-C ignored) saves the current step as Ctrl-C does, instead of losing the work
    # since the last checkpoint.
    signal.signal(signal.SIGTERM, _interrupt)
    result = train(cfg, out, resume=args.resume, stop_at=args.stop_at)
    if result.step < cfg.train.iters:
        print(
            f"stopped at step {result.step}; continue with: paragon train {args.config} --out {out} --resume",
            file=sys.stderr,
        )
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
