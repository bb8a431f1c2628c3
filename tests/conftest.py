"""Shared fixtures: real ONNX models for the runtime and VapourSynth tests."""

from __future__ import annotations

import pytest
import torch
from helpers import randomize_

import vsparagon.plugin  # noqa: F401  (first: loads OpenVINO before any VapourSynth core exists)
from vsparagon import models


@pytest.fixture
def rng() -> torch.Generator:
    """A seeded torch generator."""
    return torch.Generator().manual_seed(1234)


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> str:
    """A tiny x2 ONNX with body-dominated random weights (outputs far from the skip)."""
    path = tmp_path_factory.mktemp("models") / "tiny_x2.onnx"
    _export(randomize_(models.create("tiny", scale=2), seed=3), path)
    return str(path)


@pytest.fixture(scope="session")
def plain_onnx(tmp_path_factory) -> str:
    """A tiny x2 ONNX whose last conv is zero: its output is exactly the nearest-neighbour enlargement."""
    torch.manual_seed(0)
    model = models.create("tiny", scale=2)
    with torch.no_grad():
        for p in model.upsample[0].parameters():
            p.zero_()
    path = tmp_path_factory.mktemp("models") / "plain_x2.onnx"
    _export(model, path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_x3_onnx(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("models") / "tiny_x3.onnx"
    _export(models.create("tiny", scale=3), path)
    return str(path)


def _export(model, path):
    from vsparagon.export import export_onnx

    return export_onnx(model, path)
