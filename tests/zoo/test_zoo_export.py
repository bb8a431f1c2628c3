"""Foreign checkpoints described (receptive field), exported to ONNX, and cached by their SHA-256."""

from __future__ import annotations

import hashlib

import numpy as np
import onnxruntime as ort
import pytest
import spandrel
import torch
from zoo_models import CONVOLUTIONAL, MODELS, save_checkpoint

from vsparagon.catalogue import UNKNOWN_RADIUS, read_onnx
from vsparagon.errors import CheckpointError
from vsparagon.export import foreign
from vsparagon.export.foreign import export_foreign, foreign_descriptor, foreign_onnx
from vsparagon.export.onnx import FP16_TOLERANCE
from vsparagon.export.reach import PROBE_VERSION
from vsparagon.models import load_foreign
from vsparagon.models.foreign import ForeignModel, ForeignModule


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VSPARAGON_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


@pytest.mark.parametrize("name", CONVOLUTIONAL)
def test_a_convolutional_model_gets_a_measured_radius(zoo, name):
    d = foreign_descriptor(zoo[name])
    assert not d.global_context
    assert d.receptive_radius > 0
    assert d.config["reach"].startswith(f"measured: an impulse reaches {d.receptive_radius} px")
    assert d.config["sha256"] == hashlib.sha256(zoo[name].read_bytes()).hexdigest()
    assert (d.arch, d.scale, d.in_channels) == MODELS[name][2]


def test_the_radius_is_the_architectures_own():
    # Compact with 2 body convs: first conv, 2 convs, last conv, all 3x3 at the input resolution.
    assert foreign.describe(_compact(), sha256="0").receptive_radius == 4


def _compact(module=None, *, min_size=0, call=lambda m, x: m(x)):
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    module = module or Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2)
    return ForeignModel(
        module=ForeignModule(module.eval(), call), architecture="Compact", name="Compact", tags=(),
        purpose="SR", scale=2, in_channels=3, out_channels=3, multiple_of=1, min_size=min_size, square=False,
        tiling="supported", supports_half=True, parameters=1, spandrel_version="test",
    )  # fmt: skip


def test_the_probe_meets_the_models_minimum_size():
    def at_least_16(model, x):
        if min(x.shape[-2:]) < 16:
            raise RuntimeError(f"input of {tuple(x.shape[-2:])} is smaller than 16x16")
        return model(x)

    # One 3x3 conv: radius 1, so the checking window (2 * 1 + 8 = 10 px) must grow to the minimum.
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.Upsample(scale_factor=2))
    d = foreign.describe(_compact(module, min_size=16, call=at_least_16), sha256="0")
    assert (d.receptive_radius, d.global_context, d.min_size) == (1, False, 16)


def test_a_model_failing_on_the_probe_is_a_checkpoint_error_naming_the_file(tmp_path, cache):
    def broken(model, x):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied\nmore detail")

    source = tmp_path / "odd.pth"
    source.write_bytes(b"any bytes: the model is passed in")
    with pytest.raises(CheckpointError) as info:
        foreign_descriptor(source, model=_compact(min_size=16, call=broken))
    message = str(info.value)
    assert message.startswith(f"{source}: the Compact model fails on a test picture of the sizes spandrel test ")
    assert "(sides a multiple of 1, at least 16 px)" in message
    assert "(RuntimeError: mat1 and mat2 shapes cannot be multiplied)" in message
    assert message.endswith("update spandrel (pip install -U spandrel) or use another checkpoint")
    assert not list(cache.glob("odd-*"))  # nothing cached


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("rcan", "reaches every edge"),  # channel attention: global average pooling
        ("plksr", "does not reproduce the picture"),  # GroupNorm: statistics of the whole picture
    ],
)
def test_global_context_is_detected(zoo, name, why):
    d = foreign_descriptor(zoo[name])
    assert d.global_context
    assert d.receptive_radius == UNKNOWN_RADIUS
    assert why in d.config["reach"]


@pytest.mark.parametrize("name", ["compact", "compact_grey", "esrgan", "span"])
def test_the_onnx_graph_matches_pytorch(zoo, name):
    path = foreign_onnx(zoo[name])
    info = read_onnx(path)
    assert info.descriptor == foreign_descriptor(zoo[name])
    channels = MODELS[name][2][2]
    x = torch.rand(2, channels, 29, 23, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = load_foreign(zoo[name]).module(x).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": x.numpy()})
    assert got.shape == expected.shape == (2, channels, 58, 46)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_an_fp16_graph_is_parity_checked(zoo, tmp_path):
    report = export_foreign(zoo["compact"], tmp_path / "c16.onnx", fp16=True)
    assert report.precision == "fp16"
    assert report.max_abs_error <= FP16_TOLERANCE
    assert read_onnx(tmp_path / "c16.onnx").precision == "fp16"


def test_the_cache_is_reused_and_a_changed_file_is_converted_again(zoo, tmp_path, cache, monkeypatch):
    source = tmp_path / "mine.pth"
    source.write_bytes(zoo["compact"].read_bytes())
    loads = []
    monkeypatch.setattr(foreign, "load_foreign", lambda path: loads.append(path) or load_foreign(path))
    described = foreign_descriptor(source)
    first = foreign_onnx(source)
    assert loads == [source]  # described, then exported: the file is loaded once
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    converter = f"reach{PROBE_VERSION}-spandrel{spandrel.__version__}"  # a new probe or spandrel converts again
    assert first.parent == cache
    assert first.name == f"mine-{digest[:16]}-fp32-opset17-{converter}.onnx"
    assert (cache / f"mine-{digest[:16]}-{converter}.json").is_file()
    stamp = first.stat().st_mtime_ns

    def no_loading(path):
        raise AssertionError(f"{path} was loaded again")

    monkeypatch.setattr(foreign, "load_foreign", no_loading)
    assert foreign_onnx(source) == first
    assert foreign_descriptor(source) == described
    assert first.stat().st_mtime_ns == stamp
    monkeypatch.setattr(foreign, "load_foreign", load_foreign)  # (not undo(): that would drop the cache folder too)

    from spandrel.architectures.Compact import Compact

    torch.manual_seed(99)  # same architecture, other weights, same file name
    save_checkpoint(Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=3, upscale=2), tmp_path, "mine", "pth")
    second = foreign_onnx(source)
    assert second != first
    assert foreign_descriptor(source).config["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest() != digest
    assert foreign_descriptor(source).receptive_radius == 5  # one more conv
