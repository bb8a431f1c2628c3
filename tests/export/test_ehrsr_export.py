"""EHR-SR through ONNX: parity with PyTorch on inputs that route differently, at a size other than the
traced one, on ONNX Runtime and OpenVINO; finite in float16 on the stress patterns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx_checks import assert_onnx_runtime_matches, assert_openvino_matches, fp16_stress_results, routing_inputs

from vsparagon import models
from vsparagon.export import export_onnx
from vsparagon.models.ehrsr import FP16_SAFE
from vsparagon.models.layers.experts import MixtureOfExperts, route

#: Not the traced size (32x32) nor the exporter's own check size (37x45); odd, and no multiple of 4 or 8.
SIZE = (29, 51)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = models.create("ehrsr_tiny", scale=2)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            # Decisive routers (so the inputs below route differently) and active branches elsewhere.
            p.add_(torch.randn(p.shape, generator=gen) * (1.0 if name.endswith("router.proj.weight") else 0.05))
    return model.eval()


def _inputs() -> list[np.ndarray]:
    return routing_inputs(SIZE, photo_seed=3, noise_seed=2, grey=0.3, photo_side=64)


@dataclass(frozen=True)
class Exported:
    path: Path
    inputs: list[np.ndarray]
    expected: list[np.ndarray]
    routes: list[list[torch.Tensor]]
    """Per input, per mixture: the (1, E, h, w) routing weights PyTorch used."""


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    model = _model()
    path = tmp_path_factory.mktemp("ehrsr") / "e.onnx"
    report = export_onnx(model, path)
    assert report.max_abs_error <= 1e-4
    fused = models.fuse(model)
    routes: list[list[torch.Tensor]] = []
    captured: list[torch.Tensor] = []

    def capture(module, args, kwargs):  # the mixture's input is what its router reads
        captured.append(route(module.router.logits(args[0]), module.router.top_k))

    for m in fused.modules():
        if isinstance(m, MixtureOfExperts):
            m.register_forward_pre_hook(capture, with_kwargs=True)
    expected = []
    for x in _inputs():
        captured.clear()
        with torch.no_grad():
            expected.append(fused(torch.from_numpy(x)).numpy())
        routes.append(list(captured))
    return Exported(path, _inputs(), expected, routes)


def test_the_inputs_route_differently(exported: Exported) -> None:
    photo, noise, flat = exported.routes
    assert len(photo) == 2  # two trunk stages, one mixture each
    for a, b in ((photo, noise), (photo, flat), (noise, flat)):
        # which experts a token uses (top-2 of 3, the third weighted exactly 0) differs on > 20% of the tokens
        chosen = [((x > 0) != (y > 0)).any(dim=1).float().mean() for x, y in zip(a, b, strict=True)]
        assert max(chosen) > 0.2, chosen
    for weights in photo:
        assert ((weights > 0).sum(dim=1) == 2).all()  # top-2 of 3 experts, in the graph too


def test_onnx_runtime_equals_pytorch_at_another_odd_size(exported: Exported) -> None:
    assert exported.expected[0].shape == (1, 3, 2 * SIZE[0], 2 * SIZE[1])
    assert_onnx_runtime_matches(exported.path, exported.inputs, exported.expected, atol=1e-4)


def test_openvino_equals_pytorch_at_another_odd_size(exported: Exported) -> None:
    assert_openvino_matches(exported.path, exported.inputs, exported.expected, atol=2e-4)


def test_the_graph_routes_with_tensor_ops_and_needs_no_dft(exported: Exported) -> None:
    ops = {node.op_type for node in onnx.load(str(exported.path)).graph.node}
    assert {"TopK", "ScatterElements", "CumSum"} <= ops  # top-k routing and the scan, inside the graph
    assert "DFT" not in ops  # the frequency split is a DCT made of convolutions
    assert "Loop" not in ops  # the scan's cross-chunk steps are unrolled, a fixed number


def test_fp16_onnx_is_finite_on_every_stress_pattern(tmp_path: Path) -> None:
    results = fp16_stress_results(_model(), tmp_path / "m16.onnx", fp16_safe=FP16_SAFE)
    assert FP16_SAFE is True  # the claim this test backs
    assert all(np.isfinite(v) for v in results.values()), results


def test_ablations_export_with_parity(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = models.create("ehrsr_tiny", scale=4, use_ssm=False, use_moe=False, use_frequency=False, levels=3)
    report = export_onnx(model, tmp_path / "a.onnx")
    assert report.max_abs_error <= 1e-4
    assert report.descriptor.config["use_ssm"] is False
