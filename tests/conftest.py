"""Shared fixtures: real ONNX models for the runtime and VapourSynth tests."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import onnx
import pytest
import torch
from helpers import randomize_
from onnx import TensorProto, helper

import vsparagon.plugin  # noqa: F401  (first: loads OpenVINO before any VapourSynth core exists)
from vsparagon import models

# Converted and rewritten graphs go to a folder of this run, not the user's ~/.cache (tests may set their own).
os.environ.setdefault("VSPARAGON_CACHE", tempfile.mkdtemp(prefix="vsparagon-tests-cache-"))


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


@pytest.fixture(scope="session")
def fixed_size_onnx(tmp_path_factory) -> Path:
    """A foreign ONNX (no vsparagon metadata) that only accepts 1x3x16x16: nearest x2."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    shape = helper.make_tensor("shape", TensorProto.INT64, [4], [1, 3, 16, 16])
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["r"]),
        helper.make_node("Resize", ["r", "", "scales"], ["y"], mode="nearest"),
    ]
    graph = helper.make_graph(nodes, "fixed", [x], [y], initializer=[shape, scales])
    path = tmp_path_factory.mktemp("foreign") / "fixed16.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what every supported onnxruntime reads
    onnx.save(model, str(path))
    return path


def _export(model, path):
    from vsparagon.export import export_onnx

    return export_onnx(model, path)
