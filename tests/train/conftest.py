"""Small, fast training configs on generated or temporary data."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from vsparagon.train.config import TrainConfig, parse_config

BASE: dict[str, Any] = {
    "model": {"variant": "tiny", "scale": 2},
    "data": {
        "train": [{"kind": "synthetic", "count": 8, "size": 64}],
        "val": [{"kind": "synthetic", "count": 1, "size": 48}],
        "crop": 16,
        "batch": 4,
        "workers": 0,
    },
    "optim": {"lr": 1e-3, "warmup": 2, "ema": 0.9},
    "train": {"iters": 6, "val_every": 0, "save_every": 3, "log_every": 1, "threads": 1},
    "export": {"onnx": False},
}


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``extra`` into a copy of ``base``."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@pytest.fixture
def make_cfg():
    """``make_cfg({"train": {"iters": 4}})`` -> a checked TrainConfig built on BASE."""

    def build(extra: dict[str, Any] | None = None) -> TrainConfig:
        return parse_config(merge(BASE, extra or {}))

    return build
