"""Small, fast training configs on generated or temporary data."""

from __future__ import annotations

from typing import Any

import pytest
from train_helpers import BASE, merge

from vsparagon.train.config import TrainConfig, parse_config


@pytest.fixture
def make_cfg():
    """``make_cfg({"train": {"iters": 4}})`` -> a checked TrainConfig built on BASE."""

    def build(extra: dict[str, Any] | None = None) -> TrainConfig:
        return parse_config(merge(BASE, extra or {}))

    return build
