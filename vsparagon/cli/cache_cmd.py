"""``paragon cache list|clear``: the TensorRT engines (and timing caches) kept in ``cache_dir()/engines``.

Lists and removes both this project's engines and ONNX Runtime's TensorRT provider caches
(``engines/ort-trt``). Nothing here imports a GPU runtime.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from vsparagon.errors import ConfigError
from vsparagon.runtime.engine_cache import CachedFile, clear_cached, engines_folder, list_cached


def add_parser(commands: Any) -> None:
    """Register ``cache`` on the ``paragon`` subcommand parser."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "cache",
        help="list or remove cached TensorRT engines",
        description=(
            "TensorRT engines are built once per model, precision, shape, TensorRT version and GPU, and kept in "
            "the cache folder ($VSPARAGON_CACHE/engines, else ~/.cache/vsparagon/engines). List them, or remove "
            "them (they are rebuilt when next needed)."
        ),
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="show every cached engine and timing cache")
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    listing.set_defaults(run=run_list)
    clearing = actions.add_parser("clear", help="remove cached engines and timing caches")
    clearing.add_argument(
        "--older-than",
        type=float,
        metavar="DAYS",
        help="remove only what was last written more than DAYS days ago",
    )
    clearing.set_defaults(run=run_clear)


def run_list(args: argparse.Namespace) -> int:
    """Execute ``paragon cache list``."""
    folder = engines_folder()
    items = list_cached(folder)
    if args.json:
        print(json.dumps({"folder": str(folder), "entries": [_as_data(item) for item in items]}, indent=2))
        return 0
    if not items:
        print(f"no cached engines in {folder}")
        return 0
    print(render(items, folder))
    return 0


def run_clear(args: argparse.Namespace) -> int:
    """Execute ``paragon cache clear``."""
    if args.older_than is not None and args.older_than < 0:
        raise ConfigError(f"--older-than must be a number of days >= 0, got {args.older_than}")
    folder = engines_folder()
    removed = clear_cached(folder, older_than_days=args.older_than)
    size = sum(item.size for item in removed)
    print(f"removed {len(removed)} cached file{'' if len(removed) == 1 else 's'} ({_mib(size)}) from {folder}")
    return 0


def render(items: list[CachedFile], folder: Path) -> str:
    """A table of ``items``, one line each, with the folder and the total size."""
    header = ("kind", "model", "precision", "shape", "TensorRT", "GPU", "size", "written", "file")
    rows = [header] + [
        (
            item.kind,
            item.model,
            item.precision,
            item.shape,
            item.trt_version,
            item.gpu,
            _mib(item.size),
            time.strftime("%Y-%m-%d %H:%M", time.localtime(item.modified)),
            str(item.path.relative_to(folder)),
        )
        for item in items
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    total = sum(item.size for item in items)
    return "\n".join([f"{folder}:", *lines, f"{len(items)} file{'' if len(items) == 1 else 's'}, {_mib(total)}"])


def _mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


def _as_data(item: CachedFile) -> dict[str, object]:
    return {
        "kind": item.kind,
        "path": str(item.path),
        "bytes": item.size,
        "modified": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(item.modified)),
        "model": item.model,
        "precision": item.precision,
        "shape": item.shape,
        "tensorrt": item.trt_version,
        "gpu": item.gpu,
    }
