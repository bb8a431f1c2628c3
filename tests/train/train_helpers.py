"""Shared pieces of the training tests: a small base config and helpers."""

from __future__ import annotations

import copy
from typing import Any

import torch
from safetensors.torch import save_file

from vsparagon.train import losses

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


def vgg_file(path):
    torch.manual_seed(0)
    state, cin, i = {}, 3, 0
    for entry in losses._VGG19:
        if entry == "M":
            i += 1
            continue
        state[f"features.{i}.weight"] = torch.randn(entry, cin, 3, 3) * (2 / (9 * cin)) ** 0.5
        state[f"features.{i}.bias"] = torch.zeros(entry)
        cin, i = entry, i + 2
    state["classifier.0.weight"] = torch.zeros(2, 2)  # ignored
    save_file(state, str(path))
    return path
