"""``fp16=None`` in the plugin: the fastest safe precision, what ran in the frame properties, honest refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs
from helpers import film_frames

from vsparagon.plugin import upscale
from vsparagon.runtime import precision

ROOT = Path(__file__).resolve().parents[2]
NATIVE = precision.native_reduced()


@pytest.fixture(scope="module")
def film() -> vs.VideoNode:
    """Three frames of the sample film as RGB24 (real pictures: edges, gradients, flat sky)."""
    frames = film_frames(3, every=40)
    height, width = frames[0].shape[:2]
    blank = vs.core.std.BlankClip(width=width, height=height, format=vs.RGB24, length=len(frames))

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), frames[n][:, :, p])
        return out

    return blank.std.ModifyFrame(blank, fill)


def _codes(clip: vs.VideoNode, n: int) -> np.ndarray:
    frame = clip.get_frame(n)
    return np.stack([np.asarray(frame[p]) for p in range(3)]).astype(np.int64)


@pytest.mark.parametrize("variant", ["tiny", "tiny_video"])
def test_8_bit_clips_of_x2_models_take_native_bf16_within_one_code_value(film, variant):
    default = upscale(film, variant=variant, backend="openvino")
    exact = upscale(film, variant=variant, backend="openvino", fp16=False)
    for n in range(film.num_frames):
        props = default.get_frame(n).props
        assert props["ParagonBackend"] == "openvino"
        assert props["ParagonPrecision"] == (NATIVE or "fp32")
        assert exact.get_frame(n).props["ParagonPrecision"] == "fp32"
        assert np.abs(_codes(default, n) - _codes(exact, n)).max() <= 1


def test_deeper_and_float_clips_x4_models_and_onnx_runtime_keep_fp32(film):
    cases = {
        "10-bit": upscale(film.resize.Point(format=vs.RGB30), backend="openvino"),
        "float": upscale(film.resize.Point(format=vs.RGBS), backend="openvino"),
        "x4": upscale(film, scale=4, backend="openvino"),
        "ort-cpu": upscale(film, backend="ort-cpu"),
    }
    got = {name: (clip.get_frame(0).props["ParagonPrecision"], clip.get_frame(0).props["ParagonBackend"])
           for name, clip in cases.items()}  # fmt: skip
    assert got == {"10-bit": ("fp32", "openvino"), "float": ("fp32", "openvino"), "x4": ("fp32", "openvino"),
                   "ort-cpu": ("fp32", "ort-cpu")}  # fmt: skip


@pytest.mark.skipif(NATIVE is None, reason="this CPU has no native bf16/fp16")
def test_fp16_true_runs_the_native_precision_on_any_clip(film):
    clip = upscale(film.resize.Point(format=vs.RGBS), backend="openvino", fp16=True)
    assert clip.get_frame(0).props["ParagonPrecision"] == NATIVE


def test_fp16_true_without_native_half_precision_is_refused(film, monkeypatch):
    """On a CPU without bf16/fp16 in hardware (simulated: the CPU cannot be swapped) OpenVINO would run fp32."""
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"sse4_2", "avx2", "fma"}))
    with pytest.raises(vs.Error, match=r"^paragon\.Upscale: fp16=True: this CPU \(.*\) has no native bf16 or fp16"):
        upscale(film, backend="openvino", fp16=True)
    clip = upscale(film, backend="openvino", threads=3)  # the default quietly stays exact
    assert clip.get_frame(0).props["ParagonPrecision"] == "fp32"


def test_torch_fp16_on_the_cpu_is_refused(film):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU runs fp16")
    with pytest.raises(vs.Error, match=r"^paragon\.Upscale: fp16=True: backend='torch' runs half precision only"):
        upscale(film, model=ROOT / "models" / "paragonsr_tiny_x2.safetensors", backend="torch", fp16=True)
