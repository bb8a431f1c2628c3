"""The bounded block designs: linear growth, exact fusion and locality, fp16 on the CPU runtimes, old files."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from helpers import randomize_
from safetensors.torch import load_file, save_file

from vsparagon import models
from vsparagon.catalogue import METADATA_KEY
from vsparagon.errors import ConfigError
from vsparagon.export import export_onnx
from vsparagon.export.stress import stress_inputs, worst
from vsparagon.models.checkpoint import DIGEST_KEY, tensor_digest
from vsparagon.models.paragonsr.arch import GATES, GatedFFN
from vsparagon.train.data import synthetic_picture

BOUNDED = [g for g in GATES if g != "gelu"]


def _photo(size: int = 48) -> np.ndarray:
    return synthetic_picture(3, size).transpose(2, 0, 1).astype(np.float32) / 255


@pytest.mark.parametrize("gate", GATES)
def test_each_design_fuses_exactly(gate):
    model = randomize_(models.create("xs", scale=2, gate=gate), seed=4)
    x = torch.rand(1, 3, 19, 23, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        unfused = model.train()(x)
        fused = models.fuse(model)(x)
    assert (fused - unfused).abs().max() < 1e-5 * max(1.0, float(unfused.abs().max()))


@pytest.mark.parametrize("gate", BOUNDED)
def test_a_bounded_ffn_grows_linearly_where_gelu_squares(gate):
    torch.manual_seed(0)
    ffn = GatedFFN(16, expansion=2.0, layer_scale=1.0, gate=gate)
    old = GatedFFN(16, expansion=2.0, layer_scale=1.0, gate="gelu")
    old.load_state_dict(ffn.state_dict(), strict=False)
    x = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        grow = [float(ffn(k * x).abs().max()) / k for k in (10.0, 1e3, 1e5)]
        square = [float(old(k * x).abs().max()) / k for k in (10.0, 1e3, 1e5)]
    assert grow[2] < 2 * grow[0]  # |f(kx)| / k levels off: at most linear
    assert square[2] > 1e3 * square[0]  # the old gate: |f(kx)| / k grows with k


@pytest.mark.parametrize("gate", BOUNDED)
def test_the_receptive_radius_is_unchanged(gate):
    model = randomize_(models.create("tiny", scale=2, gate=gate), seed=2).double().eval()
    radius = model.receptive_radius
    size = 2 * radius + 9
    x = torch.rand(1, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    x.requires_grad_(True)
    c = size // 2
    model(x)[0, :, 2 * c : 2 * c + 2, 2 * c : 2 * c + 2].sum().backward()
    assert x.grad is not None
    reach = (x.grad[0].abs().sum(0) > 0).nonzero()
    assert int((reach - c).abs().max()) == radius


@pytest.mark.parametrize("gate", BOUNDED)
def test_fp16_onnx_of_each_design_is_finite_on_every_stress_pattern(gate, tmp_path):
    torch.manual_seed(0)
    model = models.create("tiny", scale=2, gate=gate)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    report = export_onnx(model, tmp_path / "m16.onnx", fp16=True, verify=False)
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    for name, x in stress_inputs(_photo()).items():
        (out,) = session.run(None, {"input": x.astype(np.float16)})
        assert np.isfinite(out.astype(np.float32)).all(), name


@pytest.mark.parametrize("variant", models.variant_names("paragonsr"))
def test_every_variant_with_perturbed_weights_stays_finite(variant):
    # Random init, every weight perturbed by N(0, 0.02): with the old gate xl overflows to NaN in fp32.
    torch.manual_seed(0)
    model = models.create(variant, scale=2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    fused = models.fuse(model).eval()
    with torch.no_grad():
        for name, x in stress_inputs(_photo(32)).items():
            assert np.isfinite(worst(fused(torch.from_numpy(x)).numpy())), name


def test_a_format_1_checkpoint_loads_as_the_old_design(tmp_path):
    model = randomize_(models.create("tiny", scale=2, gate="gelu"), seed=5)
    path = tmp_path / "old.safetensors"
    models.save(model, path)
    # rewrite it as version 1 wrote it: no gate in the config
    tensors = load_file(str(path))
    descriptor = json.loads(models.read_descriptor(path).to_json())
    descriptor["format_version"] = 1
    descriptor["fp16_safe"] = True
    del descriptor["config"]["gate"], descriptor["config"]["gate_cap"]
    metadata = {METADATA_KEY: json.dumps(descriptor), DIGEST_KEY: tensor_digest(tensors)}
    save_file(tensors, str(path), metadata=metadata)

    again = models.load(path)
    assert again.cfg.gate == "gelu"
    assert not models.read_descriptor(path).fp16_safe  # the old design overflows fp16
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(again.eval()(x), models.fuse(model)(x))


def test_new_checkpoints_record_the_design():
    model = models.create("tiny", scale=2)
    descriptor = models.describe(model)
    assert descriptor.format_version == 2
    assert descriptor.config["gate"] == model.cfg.gate != "gelu"
    assert descriptor.fp16_safe
    assert not models.describe(models.create("tiny", gate="gelu")).fp16_safe


def test_an_unknown_gate_is_refused():
    with pytest.raises(ConfigError, match="unknown gate 'relu'; one of gelu, softcap, sigmoid, rmsnorm"):
        models.create("tiny", gate="relu")


def test_a_checkpoint_naming_an_unknown_design_is_refused(tmp_path):
    from vsparagon.errors import CheckpointError

    path = tmp_path / "m.safetensors"
    models.save(models.create("tiny"), path)
    tensors = load_file(str(path))
    descriptor = json.loads(models.read_descriptor(path).to_json())
    descriptor["config"]["gate"] = "swish"
    save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(descriptor), DIGEST_KEY: tensor_digest(tensors)})
    with pytest.raises(CheckpointError, match="unknown gate 'swish'"):
        models.load(path)
