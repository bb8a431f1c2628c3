"""ONNX export: fused graphs that ONNX Runtime runs like PyTorch, written atomically."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from helpers import randomize_
from torch import nn

from vsparagon import models
from vsparagon.errors import ExportError
from vsparagon.export import FP16_TOLERANCE, FP32_TOLERANCE, export_onnx, read_onnx_descriptor

TRAINING_BRANCH_NAMES = (".main.", ".aux.", "expand_in", "expand_out", "layer_scale")


def _session(path):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run(session, x: torch.Tensor, dtype=np.float32) -> np.ndarray:
    (out,) = session.run(["output"], {"input": x.numpy().astype(dtype)})
    return out.astype(np.float32)


@pytest.mark.parametrize("variant", models.variant_names())
def test_every_variant_exports_fp32_with_parity(tmp_path, variant):
    torch.manual_seed(0)
    model = models.create(variant, scale=2)
    report = export_onnx(model, tmp_path / "m.onnx")
    assert report.max_abs_error <= FP32_TOLERANCE
    descriptor, precision = read_onnx_descriptor(report.path)
    assert precision == "fp32"
    assert descriptor.fused
    assert descriptor.variant == variant
    assert descriptor.scale == 2


@pytest.mark.parametrize("variant", models.variant_names())
def test_every_variant_exports_fp16_without_overflow(tmp_path, variant):
    """The fp16 graph stays finite and within the documented tolerance on [0, 1] inputs."""
    torch.manual_seed(0)
    model = models.create(variant, scale=2)
    report = export_onnx(model, tmp_path / "m16.onnx", fp16=True)
    assert report.precision == "fp16"
    assert report.max_abs_error <= FP16_TOLERANCE
    session = _session(report.path)
    assert session.get_inputs()[0].type == "tensor(float16)"
    assert session.get_outputs()[0].type == "tensor(float16)"
    x = torch.stack([torch.zeros(3, 8, 8), torch.ones(3, 8, 8)])  # the extremes of the range
    got = _run(session, x, np.float16)
    with torch.no_grad():
        expected = models.fuse(model)(x).numpy()
    assert np.isfinite(got).all()
    assert np.abs(got - expected).max() <= FP16_TOLERANCE


@pytest.mark.parametrize("scale", models.SCALES)
def test_body_dominated_weights_match_at_every_scale(tmp_path, scale):
    model = randomize_(models.create("tiny", scale=scale))
    fused = models.fuse(model)
    x = torch.rand(1, 3, 21, 30, generator=torch.Generator().manual_seed(scale))
    with torch.no_grad():
        expected = fused(x).numpy()
    fp32 = export_onnx(model, tmp_path / "a.onnx")
    fp16 = export_onnx(model, tmp_path / "b.onnx", fp16=True)
    assert np.abs(_run(_session(fp32.path), x) - expected).max() <= FP32_TOLERANCE
    assert np.abs(_run(_session(fp16.path), x, np.float16) - expected).max() <= FP16_TOLERANCE


def test_dynamic_batch_height_and_width(tmp_path):
    model = randomize_(models.create("tiny", scale=3))
    path = export_onnx(model, tmp_path / "m.onnx").path
    session = _session(path)
    fused = models.fuse(model)
    gen = torch.Generator().manual_seed(0)
    for shape in [(1, 3, 1, 1), (3, 3, 16, 9), (2, 3, 57, 31), (1, 3, 2, 100)]:
        x = torch.rand(*shape, generator=gen)
        got = _run(session, x)
        with torch.no_grad():
            expected = fused(x).numpy()
        assert got.shape == (shape[0], 3, shape[2] * 3, shape[3] * 3)
        assert np.abs(got - expected).max() <= FP32_TOLERANCE


def test_graph_has_no_training_branches(tmp_path):
    model = models.create("tiny", scale=2)
    fused = models.fuse(model)
    proto = onnx.load(str(export_onnx(model, tmp_path / "m.onnx").path))
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    assert len(convs) == sum(isinstance(m, nn.Conv2d) for m in fused.modules())
    names = [t.name for t in proto.graph.initializer] + [n.name for n in proto.graph.node]
    assert not [n for n in names if any(b in n for b in TRAINING_BRANCH_NAMES)]
    ops = {n.op_type for n in proto.graph.node}
    assert ops <= {
        "Conv", "Add", "Mul", "Div", "Erf", "Pow", "ReduceMean", "Sqrt", "Split", "Concat", "DepthToSpace",
        "Constant", "Identity", "Shape",
        "Gather", "Unsqueeze", "Reshape", "Expand", "ConstantOfShape", "Equal", "Where",
    }  # fmt: skip
    # the unfused export, for contrast, carries every branch
    unfused = onnx.load(str(export_onnx(model, tmp_path / "u.onnx", fused=False).path))
    assert sum(n.op_type == "Conv" for n in unfused.graph.node) == 2 * len(convs)
    assert any(".aux." in t.name for t in unfused.graph.initializer)


@pytest.mark.parametrize("opset", [13, 17, 20])
def test_opsets(tmp_path, opset):
    path = export_onnx(models.create("tiny"), tmp_path / "m.onnx", opset=opset).path
    assert onnx.load(str(path)).opset_import[0].version == opset


@pytest.mark.parametrize("opset", [3, 99, True, "17"])
def test_bad_opset(tmp_path, opset):
    with pytest.raises(ExportError, match="unsupported opset"):
        export_onnx(models.create("tiny"), tmp_path / "m.onnx", opset=opset)
    assert not list(tmp_path.iterdir())


def test_failed_parity_writes_nothing_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "m.onnx"
    export_onnx(models.create("tiny"), path)
    before = path.read_bytes()
    broken = models.create("tiny")
    with torch.no_grad():
        broken.head.main.weight.fill_(float("nan"))
    with pytest.raises(ExportError, match="differs from PyTorch by nan"):
        export_onnx(broken, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary file left behind


def test_fp16_refuses_weights_beyond_half_range(tmp_path):
    model = models.create("tiny")
    with torch.no_grad():
        model.groups[0].blocks[0].ffn.proj_in.weight[0, 0] = 1e6
    with pytest.raises(ExportError, match="float16 range"):
        export_onnx(model, tmp_path / "m.onnx", fp16=True)
    assert not list(tmp_path.iterdir())


def test_destination_errors(tmp_path):
    with pytest.raises(ExportError, match="does not exist"):
        export_onnx(models.create("tiny"), tmp_path / "no" / "m.onnx")
    with pytest.raises(ExportError, match="is a folder"):
        export_onnx(models.create("tiny"), tmp_path)


def test_export_does_not_change_the_model(tmp_path):
    model = models.create("tiny")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_onnx(model, tmp_path / "m.onnx", fp16=True)
    after = model.state_dict()
    assert model.training
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(v.dtype == torch.float32 for v in after.values())


def test_onnx_without_metadata_is_rejected(tmp_path):
    path = tmp_path / "plain.onnx"
    with pytest.warns(DeprecationWarning, match="legacy"):  # the TorchScript exporter announces its deprecation
        torch.onnx.export(nn.Conv2d(3, 3, 1), (torch.rand(1, 3, 4, 4),), str(path), dynamo=False)
    with pytest.raises(ExportError, match="without vsparagon metadata"):
        read_onnx_descriptor(path)
