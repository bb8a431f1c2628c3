"""``paragon``: the command-line entry point.

Every user error ends in one line on stderr (``paragon <command>: error: ...``)
and a non-zero exit code, never a traceback. Set ``PARAGON_DEBUG=1`` to see the
traceback of an unexpected failure.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from vsparagon import __version__
from vsparagon.cli import (
    bench_cmd,
    cache_cmd,
    compare_cmd,
    eval_cmd,
    export_cmd,
    info_cmd,
    release_cmd,
    train_cmd,
    upscale_cmd,
)
from vsparagon.errors import ParagonError

#: Exit codes: 0 success, 1 unexpected failure, 2 bad input, 130 interrupted.
EXIT_INTERNAL, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subcommand per module."""
    parser = argparse.ArgumentParser(prog="paragon", description="ParagonSR super-resolution tools.")
    parser.add_argument("--version", action="version", version=f"vsparagon {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    export_cmd.add_parser(commands)
    upscale_cmd.add_parser(commands)
    bench_cmd.add_parser(commands)
    info_cmd.add_parser(commands)
    cache_cmd.add_parser(commands)
    train_cmd.add_parser(commands)
    eval_cmd.add_parser(commands)
    release_cmd.add_parser(commands)
    compare_cmd.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``paragon`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"paragon {args.command}"
    try:
        return int(args.run(args) or 0)
    except ParagonError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if os.environ.get("PARAGON_DEBUG"):
            traceback.print_exc()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(
            f"{prog}: internal error: {type(exc).__name__}: {first} (set PARAGON_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
