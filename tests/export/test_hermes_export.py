"""HERMES through ONNX: parity with PyTorch on ONNX Runtime and OpenVINO at another, odd size, on
inputs that route differently, and fp16 finiteness on the stress patterns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from vsparagon import models
from vsparagon.export import export_onnx
from vsparagon.export.stress import stress_inputs, worst
from vsparagon.models.hermes import FP16_SAFE
from vsparagon.models.layers.experts import MixtureOfExperts
from vsparagon.runtime.backends import openvino
from vsparagon.train.data import synthetic_picture

SIZE = (37, 53)  # the export traces at 32 x 32; every check runs at this odd size


def _model() -> torch.nn.Module:
    """hermes_tiny x2 with every parameter moved off its initial value and a router that spreads the routes."""
    model = models.create("hermes_tiny", scale=2)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
        moe = model.experts
        assert isinstance(moe, MixtureOfExperts)
        moe.router.proj.weight.normal_(0.0, 1.0, generator=gen)
    _centre_router(model.eval(), moe)
    return model


def _centre_router(model: torch.nn.Module, moe: MixtureOfExperts) -> None:
    """Shift the router's bias so that no expert wins everywhere: the routes then follow the content."""
    seen: list[torch.Tensor] = []
    handle = moe.register_forward_hook(
        lambda mod, args, kwargs, out: seen.append(moe.router.logits(kwargs["routing"], kwargs["context"])),
        with_kwargs=True,
    )
    with torch.no_grad():
        for x in _inputs():
            model(torch.from_numpy(x))
        handle.remove()
        assert moe.router.proj.bias is not None
        moe.router.proj.bias.sub_(torch.cat(seen, dim=2).mean(dim=(0, 2, 3)) * moe.router.temperature)


def _inputs() -> list[np.ndarray]:
    """A photo, noise and a flat grey picture: content that the router sends to different experts."""
    h, w = SIZE
    photo = synthetic_picture(5, max(h, w)).transpose(2, 0, 1)[:, :h, :w].astype(np.float32) / 255
    noise = np.random.default_rng(1).random((3, h, w), dtype=np.float32)
    flat = np.full((3, h, w), 0.5, dtype=np.float32)
    return [np.ascontiguousarray(a)[None] for a in (photo, noise, flat)]


@dataclass(frozen=True)
class Exported:
    """One exported model and what PyTorch says about the check inputs."""

    path: Path
    inputs: list[np.ndarray]
    expected: list[np.ndarray]
    """The fused PyTorch model's output for each input."""
    routes: list[torch.Tensor]
    """(E,) share of trunk pixels each expert was chosen for, per input."""


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    model = _model()
    path = tmp_path_factory.mktemp("hermes") / "hermes_tiny_x2.onnx"
    report = export_onnx(model, path)  # parity-checked by export_onnx itself at the trace size
    assert report.max_abs_error <= report.tolerance
    fused = models.fuse(model)
    moe = fused.experts
    assert isinstance(moe, MixtureOfExperts)
    inputs, expected, routes = _inputs(), [], []
    for x in inputs:
        with torch.no_grad():
            expected.append(fused(torch.from_numpy(x)).numpy())
        assert moe.last_weights is not None
        routes.append((moe.last_weights > 0).flatten(2).float().mean(dim=2)[0])
    return Exported(path=path, inputs=inputs, expected=expected, routes=routes)


def test_the_inputs_route_differently(exported: Exported) -> None:
    photo, noise, flat = exported.routes
    assert not torch.allclose(photo, noise)
    assert not torch.allclose(noise, flat)


def test_onnx_runtime_equals_pytorch_at_another_odd_size(exported: Exported) -> None:
    session = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    for x, expected in zip(exported.inputs, exported.expected, strict=True):
        (out,) = session.run(None, {"input": x})
        assert out.shape == (1, 3, 2 * SIZE[0], 2 * SIZE[1])
        np.testing.assert_allclose(out, expected, atol=2e-4, rtol=0)


def test_openvino_equals_pytorch_at_another_odd_size(exported: Exported) -> None:
    ov = openvino.import_openvino()
    core = openvino.shared_core(ov)
    compiled = core.compile_model(core.read_model(str(exported.path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    for x, expected in zip(exported.inputs, exported.expected, strict=True):
        out = compiled([x])[compiled.output(0)]
        np.testing.assert_allclose(out, expected, atol=2e-4, rtol=0)


def test_fp16_onnx_is_finite_on_every_stress_pattern(tmp_path: Path) -> None:
    report = export_onnx(_model(), tmp_path / "h16.onnx", fp16=True, verify=False)
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    photo = synthetic_picture(3, 48).transpose(2, 0, 1).astype(np.float32) / 255
    results = {}
    for name, x in stress_inputs(photo).items():
        (out,) = session.run(None, {"input": x.astype(np.float16)})
        results[name] = worst(out.astype(np.float32))
    assert report.descriptor.fp16_safe is FP16_SAFE is True  # the claim this test backs
    assert all(np.isfinite(v) for v in results.values()), results
