"""Model files of every kind, and what happens when inference fails mid-clip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import vapoursynth as vs
from helpers import noise_clip, planes, randomize_

from vsparagon import models
from vsparagon.plugin import upscale

VSPIPE = Path(sys.executable).with_name("vspipe")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny_x2.safetensors"
    models.save(randomize_(models.create("tiny", scale=2), seed=9), path)
    return path


def test_torch_backend_runs_checkpoints_like_onnxruntime(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("VSPARAGON_CACHE", str(tmp_path / "cache"))
    clip = noise_clip(40, 28)
    by_torch = planes(upscale(clip, model=str(checkpoint), backend="torch").get_frame(0))
    # ort-cpu takes the checkpoint too: exported once into the cache, then reused
    by_ort = planes(upscale(clip, model=str(checkpoint), backend="ort-cpu").get_frame(0))
    assert np.abs(by_torch - by_ort).max() < 1e-4
    cached = sorted(p.name.split("-", 2)[-1] for p in (tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert cached == ["fp32-cpu2.onnx", "fp32.onnx"]  # the export and its CPU rewrite, once each
    with torch.no_grad():
        direct = models.load(checkpoint, fused=True)(torch.from_numpy(planes(clip.get_frame(0))).float()[None])
    assert np.abs(by_torch - direct[0].numpy()).max() < 1e-5


def test_torch_backend_refuses_onnx(tiny_onnx):
    with pytest.raises(vs.Error, match=r"paragon\.Upscale: backend='torch' runs \.safetensors checkpoints"):
        upscale(noise_clip(16, 16), model=tiny_onnx, backend="torch")


def test_a_foreign_onnx_is_probed_for_its_scale(fixed_size_onnx):
    clip = noise_clip(16, 16)
    out = upscale(clip, model=str(fixed_size_onnx), backend="ort-cpu")
    assert (out.width, out.height) == (32, 32)
    expected = np.repeat(np.repeat(planes(clip.get_frame(0)), 2, axis=1), 2, axis=2)
    assert np.abs(planes(out.get_frame(0)) - expected).max() < 1e-6
    with pytest.raises(vs.Error, match="upscales x2, but scale=3 was asked"):
        upscale(clip, model=str(fixed_size_onnx), scale=3)


def test_a_failing_frame_is_a_frame_error(fixed_size_onnx):
    out = upscale(noise_clip(32, 24), model=str(fixed_size_onnx), backend="ort-cpu")
    with pytest.raises(vs.Error, match=r"paragon\.Upscale: frame 1: inference failed"):
        out.get_frame(1)


def test_vspipe_reports_a_failing_frame_and_exits(fixed_size_onnx, tmp_path):
    script = tmp_path / "fail.vpy"
    script.write_text(
        "import vapoursynth as vs\n"
        "import vsparagon.plugin\n"
        "clip = vs.core.std.BlankClip(width=32, height=24, format=vs.YUV420P8, length=5)\n"
        f"vs.core.paragon.Upscale(clip, model={str(fixed_size_onnx)!r}, backend='ort-cpu').set_output()\n"
    )
    result = subprocess.run([str(VSPIPE), "-c", "y4m", str(script), "-"], capture_output=True, timeout=120)
    assert result.returncode != 0
    assert b"paragon.Upscale: frame" in result.stderr
    assert b"inference failed" in result.stderr
    assert b"Segmentation" not in result.stderr


def _nearest_x2_needing_multiple_of_8(path: Path) -> Path:
    """Nearest x2 through SpaceToDepth/DepthToSpace(8): it fails unless height and width are multiples of 8.

    Its descriptor says so (``multiple_of=8``, radius 0), as a model with strided stages would.
    """
    import onnx
    from onnx import TensorProto, helper

    from vsparagon.catalogue import METADATA_KEY, ModelDescriptor

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])
    nodes = [
        helper.make_node("SpaceToDepth", ["x"], ["s"], blocksize=8),
        helper.make_node("DepthToSpace", ["s"], ["d"], blocksize=8, mode="DCR"),
        helper.make_node("Resize", ["d", "", "scales"], ["y"], mode="nearest"),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "m8", [x], [y], initializer=[scales]), opset_imports=[helper.make_opsetid("", 17)]
    )
    model.ir_version = 8
    desc = ModelDescriptor(arch="onnx", variant="m8", scale=2, multiple_of=8, receptive_radius=0, fused=True)
    helper.set_model_props(model, {METADATA_KEY: desc.to_json()})
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("tile", [0, 16])
def test_a_model_needing_a_size_multiple_gets_padded_input(tmp_path, tile):
    model = _nearest_x2_needing_multiple_of_8(tmp_path / "m8.onnx")
    clip = noise_clip(36, 20)  # neither a multiple of 8
    out = upscale(clip, model=str(model), backend="ort-cpu", tile=tile, overlap=0)
    expected = np.repeat(np.repeat(planes(clip.get_frame(0)), 2, axis=1), 2, axis=2)
    assert (out.width, out.height) == (72, 40)
    assert np.abs(planes(out.get_frame(0)) - expected).max() < 1e-6


def test_a_checkpoint_in_half_precision_is_exported_as_fp16_once(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("VSPARAGON_CACHE", str(tmp_path / "cache"))
    out = upscale(noise_clip(24, 16), model=str(checkpoint), backend="ort-cpu", fp16=True)
    out.get_frame(0)
    cached = sorted(p.name.split("-", 2)[-1] for p in (tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert cached == ["fp16-cpu2.onnx", "fp16.onnx"]  # the parity-checked fp16 export and its CPU rewrite


def test_openvino_errors_keep_their_reason():
    from vsparagon.runtime.backends.openvino import ov_reason

    exc = RuntimeError(
        "Exception from src/inference/src/cpp/core.cpp:84:\n"
        "Check 'false' failed at src/frontends/onnx/frontend/src/frontend.cpp:1:\n"
        "-- No conversion rule found for operations: NoSuchOp-17\n"
    )
    assert ov_reason(exc) == "-- No conversion rule found for operations: NoSuchOp-17"


def test_half_precision_on_a_model_that_is_not_fp16_safe_is_refused(tmp_path):
    # The format-1 design has the unbounded gate: fp16 can give inf/NaN frames.
    from vsparagon.export import export_onnx

    path = tmp_path / "old_design.onnx"
    export_onnx(models.fuse(randomize_(models.create("tiny", scale=4, gate="gelu"), seed=3)), path, verify=False)
    with pytest.raises(vs.Error, match=r"paragon\.Upscale: model old_design\.onnx is not marked fp16-safe"):
        upscale(noise_clip(16, 16), model=str(path), scale=4, backend="ort-cpu", fp16=True)
    assert upscale(noise_clip(16, 16), model=str(path), scale=4, backend="ort-cpu").width == 64  # fp16=None: fp32
