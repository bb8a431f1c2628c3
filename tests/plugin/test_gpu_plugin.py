"""The plugin's GPU-facing options: ``precision=``, ``num_streams=``, half-float clips, the frame hook.

The CPU tests run real cores and real sessions; the ``gpu`` tests run torch on CUDA end to end and
are skipped where PyTorch sees no CUDA device.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch
import vapoursynth as vs
from helpers import noise_clip, planes

from vsparagon.plugin import upscale
from vsparagon.runtime.backends import Session
from vsparagon.runtime.backends.gpu_common import DEFAULT_GPU_STREAMS
from vsparagon.runtime.backends.torch_backend import TorchBackend
from vsparagon.runtime.sessions import shared_sessions

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "paragonsr_tiny_x2.onnx"
GPU = pytest.mark.gpu
NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (PyTorch sees none)")


@pytest.fixture
def frames_seen(monkeypatch):
    """The (image dtype, planes dtype) of every frame any session's hook is given."""
    seen: list[tuple[np.dtype, np.dtype]] = []
    real = Session.run_frame_into

    def spy(self, image, plan, out):
        seen.append((image.dtype, out[0].dtype))
        return real(self, image, plan, out)

    monkeypatch.setattr(Session, "run_frame_into", spy)
    return seen


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": "half"}, r"precision must be one of 'auto', 'fp32', 'fp16', 'bf16', got 'half'"),
        ({"precision": "fp32", "fp16": True}, r"precision='fp32' and fp16=True disagree; pass only one of them"),
        ({"precision": "fp16", "fp16": False}, r"precision='fp16' and fp16=False disagree"),
        ({"precision": "bf16", "fp16": False}, r"precision='bf16' and fp16=False disagree"),
        ({"precision": 16}, r"precision must be a string, got 16"),
        ({"num_streams": -1}, r"num_streams must be 0 \(automatic\) to 16, got -1"),
        ({"num_streams": 17}, r"num_streams must be 0 \(automatic\) to 16, got 17"),
        ({"num_streams": 1.5}, r"num_streams must be an integer, got 1\.5"),
        ({"precision": "bf16", "backend": "ort-cpu"}, r"precision='bf16' runs on backend='torch' .*, not 'ort-cpu'"),
    ],
)
def test_bad_precision_and_streams_are_one_line_errors(kwargs, message):
    with pytest.raises(vs.Error, match=r"^paragon\.Upscale: " + message):
        upscale(noise_clip(16, 16), **{"backend": "ort-cpu", **kwargs})


def test_bf16_on_torch_without_a_gpu_names_the_fix():
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    message = r"^paragon\.Upscale: precision='bf16': backend='torch' runs half precision only"
    with pytest.raises(vs.Error, match=message):
        upscale(noise_clip(16, 16), backend="torch", precision="bf16")


def test_precision_reaches_the_session_and_the_frames():
    clip = noise_clip(24, 16)
    full = upscale(clip, backend="ort-cpu", precision="fp32").get_frame(0)
    half = upscale(clip, backend="ort-cpu", precision="fp16").get_frame(0)
    assert full.props["ParagonPrecision"] == "fp32"
    assert half.props["ParagonPrecision"] == "fp16"
    assert 0 < np.abs(planes(full) - planes(half)).max() < 2e-2
    assert planes(upscale(clip, backend="ort-cpu", fp16=True).get_frame(0)).tobytes() == planes(half).tobytes()


def test_num_streams_sets_the_frames_in_flight():
    clip = noise_clip(24, 16, length=5)
    three = upscale(clip, backend="ort-cpu", num_streams=3, fp16=False)
    keys = [k for k in shared_sessions() if "OrtCpu(" in k and "streams=3" in k]
    assert len(keys) == 1
    assert shared_sessions()[keys[0]].max_parallel == 3
    one = upscale(clip, backend="ort-cpu", num_streams=1, fp16=False)
    for n in range(clip.num_frames):  # in order, each frame its own
        assert np.array_equal(planes(three.get_frame(n)), planes(one.get_frame(n)))


def test_a_gpu_backend_keeps_two_frames_in_flight_by_default(monkeypatch):
    monkeypatch.setattr(TorchBackend, "on_gpu", lambda self: True)
    clip = noise_clip(16, 16)
    upscale(clip, model=SHIPPED.with_suffix(".safetensors"), backend="torch", fp16=False).get_frame(0)
    assert any(k.startswith("TorchBackend(") and f"streams={DEFAULT_GPU_STREAMS}," in k for k in shared_sessions())
    upscale(clip, model=SHIPPED.with_suffix(".safetensors"), backend="torch", fp16=False, num_streams=3)
    assert any(k.startswith("TorchBackend(") and "streams=3," in k for k in shared_sessions())


def test_torch_runs_a_shipped_variant_like_onnx_runtime():
    clip = noise_clip(40, 24)
    by_torch = upscale(clip, variant="tiny", backend="torch").get_frame(0)
    by_ort = upscale(clip, variant="tiny", backend="ort-cpu", fp16=False).get_frame(0)
    assert by_torch.props["ParagonBackend"] == "torch"
    assert np.abs(planes(by_torch) - planes(by_ort)).max() < 1e-4


def test_torch_tiles_joined_by_the_hook_equal_the_whole_frame():
    clip = noise_clip(150, 72, length=2)
    whole = upscale(clip, variant="tiny", backend="torch")
    tiled = upscale(clip, variant="tiny", backend="torch", tile=64)
    blended = upscale(clip, variant="tiny", backend="torch", tile=64, join="blend", overlap=32)
    for n in range(2):
        assert np.abs(planes(tiled.get_frame(n)) - planes(whole.get_frame(n))).max() < 1e-4
        assert np.abs(planes(blended.get_frame(n)) - planes(whole.get_frame(n))).max() < 1e-3


def test_a_half_float_clip_travels_as_half_on_a_half_session(frames_seen):
    clip = noise_clip(24, 16, fmt=vs.RGBH)
    out = upscale(clip, backend="ort-cpu", fp16=True)
    assert out.format.id == vs.RGBH
    frame = out.get_frame(0)
    assert frames_seen == [(np.dtype(np.float16), np.dtype(np.float16))]  # no RGBS on the way in or out
    reference = upscale(clip.resize.Point(format=vs.RGBS), backend="ort-cpu", fp16=True).get_frame(0)
    assert np.abs(planes(frame) - planes(reference)).max() < 2e-3  # the output's own rounding to half


@pytest.mark.parametrize(
    ("fmt", "fp16", "travels"),
    [
        (vs.RGBH, False, np.float32),  # an fp32 session takes fp32
        (vs.RGB48, True, np.float32),  # deeper than 10 bits: the output never rounds to half on its way
        (vs.RGB24, True, np.float32),
        (vs.YUV444PH, True, np.float16),
        (vs.GRAYH, True, np.float16),
    ],
)
def test_what_travels_as_half(frames_seen, fmt, fp16, travels):
    clip = noise_clip(24, 16, fmt=fmt)
    out = upscale(clip, backend="ort-cpu", fp16=fp16)
    assert out.format.id == clip.format.id
    out.get_frame(0)
    assert frames_seen == [(np.dtype(travels), np.dtype(travels))]


# --- on a CUDA GPU (skipped where there is none) -------------------------------------------------------------------


@GPU
@NO_CUDA
def test_gpu_torch_matches_the_cpu_within_fp16_tolerance():
    clip = noise_clip(640, 360, length=6)
    gpu = upscale(clip, variant="tiny", backend="torch")
    cpu = upscale(clip, variant="tiny", backend="ort-cpu", fp16=False)
    frame = gpu.get_frame(0)
    assert frame.props["ParagonPrecision"] == "fp16"
    assert any(k.startswith("TorchBackend(") and f"streams={DEFAULT_GPU_STREAMS}," in k for k in shared_sessions())
    for n in range(clip.num_frames):  # past the warm-up: the CUDA graph frames too
        assert np.abs(planes(gpu.get_frame(n)) - planes(cpu.get_frame(n))).max() < 2e-2


@GPU
@NO_CUDA
def test_gpu_tiled_equals_whole_frame():
    clip = noise_clip(640, 360, length=2)
    whole = upscale(clip, variant="tiny", backend="torch", precision="fp32")
    tiled = upscale(clip, variant="tiny", backend="torch", precision="fp32", tile=256)
    for n in range(2):
        assert np.abs(planes(tiled.get_frame(n)) - planes(whole.get_frame(n))).max() < 1e-3


@GPU
@NO_CUDA
def test_gpu_cuda_graphs_replay_what_eager_computed():
    clip = noise_clip(320, 192, length=1) * 8  # the same frame 8 times: lanes warm up, capture, replay
    out = upscale(clip, variant="tiny", backend="torch", precision="fp32", num_streams=1)
    first = planes(out.get_frame(0))
    for n in range(1, 8):
        assert np.abs(planes(out.get_frame(n)) - first).max() < 1e-4
    (session,) = [s for k, s in shared_sessions().items() if k.startswith("TorchBackend(") and "streams=1," in k]
    lane = session._pool.instances[0]  # type: ignore[attr-defined]
    assert any(v is not None for v in lane._captured.values())


@GPU
@NO_CUDA
def test_gpu_half_float_clip_and_bf16():
    clip = noise_clip(320, 192, fmt=vs.RGBH)
    out = upscale(clip, variant="tiny", backend="torch")
    assert out.format.id == vs.RGBH
    reference = planes(upscale(clip.resize.Point(format=vs.RGBS), variant="tiny", backend="ort-cpu").get_frame(0))
    assert np.abs(planes(out.get_frame(0)) - reference).max() < 2e-2
    if torch.cuda.get_device_capability()[0] >= 8:
        bf16 = upscale(clip.resize.Point(format=vs.RGBS), variant="tiny", backend="torch", precision="bf16")
        frame = bf16.get_frame(0)
        assert frame.props["ParagonPrecision"] == "bf16"
        assert np.abs(planes(frame) - reference).max() < 6e-2


def test_auto_falls_through_a_backend_that_fails_to_open(monkeypatch, capsys):
    """auto's first choice failing to open (here ort-cuda: onnxruntime-gpu is not installed) gives way to the
    next usable backend, said once on stderr; the frames are that backend's."""
    upscale_module = importlib.import_module("vsparagon.plugin.upscale")  # the package exports the function

    monkeypatch.setattr(upscale_module, "auto_candidates", lambda source: ["ort-cuda", "ort-cpu"])
    clip = noise_clip(24, 16, seed=3)
    auto = upscale(clip, model=str(SHIPPED), backend="auto")
    frame = auto.get_frame(0)
    assert frame.props["ParagonBackend"] == "ort-cpu"
    direct = upscale(clip, model=str(SHIPPED), backend="ort-cpu").get_frame(0)
    np.testing.assert_array_equal(planes(frame), planes(direct))
    err = capsys.readouterr().err
    assert err.count("backend='auto' skips ONNX Runtime CUDA (it failed to open): ") == 1
    assert "onnxruntime-gpu" in err


def test_auto_reports_the_last_failure_when_nothing_opens(monkeypatch):
    upscale_module = importlib.import_module("vsparagon.plugin.upscale")  # the package exports the function

    monkeypatch.setattr(upscale_module, "auto_candidates", lambda source: ["ort-trt", "ort-cuda"])
    with pytest.raises(vs.Error, match=r"^paragon\.Upscale: backend='ort-cuda' needs onnxruntime-gpu"):
        upscale(noise_clip(16, 16), model=str(SHIPPED), backend="auto")
