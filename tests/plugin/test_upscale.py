"""``vsparagon.upscale`` on a real VapourSynth core, real clips and real runtimes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import vapoursynth as vs
from helpers import noise_clip, planes

from vsparagon.plugin import formats, upscale
from vsparagon.runtime import sessions
from vsparagon.runtime.backends import make_backend
from vsparagon.runtime.policy import auto_streams
from vsparagon.runtime.precision import native_reduced

FORMATS = [
    vs.RGB24,
    vs.RGB48,
    vs.RGBH,
    vs.RGBS,
    vs.YUV420P8,
    vs.YUV420P10,
    vs.YUV422P8,
    vs.YUV444P16,
    vs.YUV444PS,
    vs.GRAY8,
    vs.GRAY16,
    vs.GRAYS,
]


def _direct(onnx_path: str, frame: vs.VideoFrame) -> np.ndarray:
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    x = planes(frame).astype(np.float32)[None]
    return session.run(None, {"input": x})[0][0]


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: vs.core.get_video_format(f).name)
def test_every_format_comes_back_in_the_same_format(fmt, plain_onnx):
    clip = noise_clip(40, 30, fmt, length=2)
    out = upscale(clip, model=plain_onnx, backend="ort-cpu")
    assert out.format.id == clip.format.id
    assert (out.width, out.height, out.num_frames) == (80, 60, 2)
    # this model's output is exactly a nearest-neighbour enlargement, so the result must be the
    # source enlarged: any wrong matrix, range, chroma siting or plane order shows up here
    reference = clip.resize.Point(80, 60)
    got_frame, want_frame = out.get_frame(1), reference.get_frame(1)
    fmt_ = clip.format
    lsb = 1e-3 if fmt_.sample_type == vs.FLOAT else 1.0
    if fmt_.subsampling_w or fmt_.subsampling_h:  # chroma is resampled (Spline36) on the way
        luma = [np.asarray(f[0]).astype(np.float64) for f in (got_frame, want_frame)]
        assert np.abs(luma[0] - luma[1]).max() <= 1.01 * lsb
        # chroma: the same conversions with a point enlargement in place of the model
        info = formats.color_info(clip, clip.get_frame(0).props)
        path = formats.from_rgbs(formats.to_rgbs(clip, info).resize.Point(80, 60), fmt_, info).get_frame(1)
        for p in (1, 2):
            got_c, want_c = (np.asarray(f[p]).astype(np.float64) for f in (got_frame, path))
            assert np.abs(got_c - want_c).max() <= 1.01 * lsb
    else:
        got, want = planes(got_frame), planes(want_frame)
        half = fmt_.bits_per_sample == 16 and fmt_.sample_type == vs.FLOAT
        assert np.abs(got - want).max() <= (3e-3 if half else lsb * 1.01)


def test_rgbs_output_equals_the_model(tiny_onnx):
    clip = noise_clip(48, 36)
    out = upscale(clip, model=tiny_onnx, backend="ort-cpu")
    got = planes(out.get_frame(0))
    want = _direct(tiny_onnx, clip.get_frame(0))
    assert got.shape == (3, 72, 96)
    assert np.abs(got - want).max() < 1e-5
    assert np.abs(got - np.repeat(np.repeat(planes(clip.get_frame(0)), 2, 1), 2, 2)).mean() > 0.05


def test_openvino_matches_onnxruntime(tiny_onnx):
    clip = noise_clip(48, 36)
    a = planes(upscale(clip, model=tiny_onnx, backend="ort-cpu").get_frame(0))
    b = planes(upscale(clip, model=tiny_onnx, backend="openvino").get_frame(0))
    assert np.abs(a - b).max() < 1e-4


@pytest.mark.parametrize(
    "backend",
    [
        "ort-cpu",
        pytest.param(
            "openvino",
            marks=pytest.mark.skipif(
                native_reduced() is None,
                reason="this CPU has no native bf16/fp16: OpenVINO refuses fp16=True (test_precision_plugin.py)",
            ),
        ),
    ],
)
def test_fp16_is_accepted_and_close_to_fp32(tiny_onnx, backend, tmp_path, monkeypatch):
    monkeypatch.setenv("VSPARAGON_CACHE", str(tmp_path))  # ort-cpu converts the fp32 graph into this cache
    clip = noise_clip(40, 32)
    full = planes(upscale(clip, model=tiny_onnx, backend=backend).get_frame(0))
    half = planes(upscale(clip, model=tiny_onnx, backend=backend, fp16=True).get_frame(0))
    assert np.isfinite(half).all()
    assert np.abs(half - full).max() < 2e-2


def test_frame_properties_are_carried_over(plain_onnx):
    clip = noise_clip(32, 24, vs.YUV420P10).std.SetFrameProp("MyTag", intval=42)
    out = upscale(clip, model=plain_onnx, backend="ort-cpu")
    props = out.get_frame(0).props
    assert props["MyTag"] == 42
    assert props["_Matrix"] == 1  # BT.709, as the source said


def test_same_output_whatever_the_thread_count_and_request_order(tiny_onnx):
    clip = noise_clip(32, 24, length=4)
    core = vs.core.core
    old = core.num_threads
    try:
        core.num_threads = 1
        serial = [planes(f) for f in upscale(clip, model=tiny_onnx, backend="ort-cpu").frames()]
        core.num_threads = 4
        out = upscale(clip, model=tiny_onnx, backend="ort-cpu")
        futures = {n: out.get_frame_async(n) for n in (3, 1, 0, 2)}
        parallel = {n: planes(fut.result()) for n, fut in futures.items()}
    finally:
        core.num_threads = old
    for n in range(4):
        assert np.array_equal(serial[n], parallel[n])
    assert not np.array_equal(serial[0], serial[1])


@pytest.mark.parametrize(
    ("threads", "core_threads", "streams"),
    [(1, 8, 1), (2, 1, 1), (2, 2, 2), (2, 8, 2), (4, 8, 2), (16, 8, 4), (16, 2, 2), (64, 64, 16)],
)
def test_streams_keep_cores_busy_within_what_vapoursynth_requests(threads, core_threads, streams):
    assert auto_streams(threads, core_threads) == streams


@pytest.mark.parametrize("backend", ["ort-cpu", "openvino"])
def test_cpu_backends_infer_frames_at_once(tiny_onnx, backend):
    """With two VapourSynth threads, two frames are inside the runtime together; the output is unchanged."""
    clip = noise_clip(48, 32, length=6)
    core = vs.core.core
    old = core.num_threads
    try:
        core.num_threads = 2
        out = upscale(clip, model=tiny_onnx, backend=backend, threads=2)
        core.num_threads = 1
        serial = [planes(f) for f in upscale(clip, model=tiny_onnx, backend=backend, threads=2).frames()]
    finally:
        core.num_threads = old
    config = repr(make_backend(backend, threads=2, streams=2))
    key = next(k for k in sessions.shared_sessions() if k.startswith(config) and str(Path(tiny_onnx).resolve()) in k)
    session = sessions.shared_sessions()[key]
    assert session.max_parallel == 2
    real_run, inside, most = session._run, [0], [0]
    lock = threading.Lock()

    def counting_run(batch):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        try:
            time.sleep(0.25)  # long enough for the second frame's call to arrive, even on a loaded machine
            return real_run(batch)
        finally:
            with lock:
                inside[0] -= 1

    session._run = counting_run
    try:
        core.num_threads = 2
        parallel = [planes(f) for f in out.frames()]
    finally:
        session._run = real_run
        core.num_threads = old
    assert most[0] == 2
    for a, b in zip(serial, parallel, strict=True):
        assert np.abs(a - b).max() < 1e-6


def test_one_session_per_configuration(tiny_onnx):
    clip = noise_clip(16, 16)
    upscale(clip, model=tiny_onnx, backend="ort-cpu", threads=1)
    before = sessions.loaded_sessions()
    for _ in range(3):
        upscale(clip, model=tiny_onnx, backend="ort-cpu", threads=1)
    assert sessions.loaded_sessions() == before
    upscale(clip, model=tiny_onnx, backend="ort-cpu", threads=3)  # a configuration no other test loads
    assert sessions.loaded_sessions() == before + 1


@pytest.mark.parametrize(("tile", "size"), [([64, 70], (201, 190)), (61, (130, 150)), ([300, 300], (50, 37))])
def test_tiles_with_crop_join_equal_the_whole_frame(tiny_onnx, tile, size):
    clip = noise_clip(*size)
    whole = planes(upscale(clip, model=tiny_onnx, backend="ort-cpu").get_frame(0))
    # overlap=-1 picks the receptive radius (60 for tiny): exact
    tiled = planes(upscale(clip, model=tiny_onnx, backend="ort-cpu", tile=tile).get_frame(0))
    assert np.abs(tiled - whole).max() < 1e-4


def test_crop_join_with_too_little_overlap_is_not_exact(tiny_onnx):
    clip = noise_clip(96, 80)
    whole = planes(upscale(clip, model=tiny_onnx, backend="ort-cpu").get_frame(0))
    tiled = planes(upscale(clip, model=tiny_onnx, backend="ort-cpu", tile=32, overlap=2).get_frame(0))
    assert np.abs(tiled - whole).max() > 1e-4  # the exactness test above can fail


def test_blend_join_keeps_seams_small(tiny_onnx):
    clip = noise_clip(64, 48)
    whole = planes(upscale(clip, model=tiny_onnx, backend="ort-cpu").get_frame(0))
    blend = planes(upscale(clip, model=tiny_onnx, backend="ort-cpu", tile=24, overlap=12, join="blend").get_frame(0))
    crop = planes(upscale(clip, model=tiny_onnx, backend="ort-cpu", tile=24, overlap=12, join="crop").get_frame(0))
    # both joins are far below 8-bit visibility (2e-3) for this model at this overlap
    assert np.abs(blend - whole).max() < 2e-3
    assert np.abs(crop - whole).max() < 2e-3


def test_alpha_is_upscaled_too(plain_onnx):
    clip = noise_clip(32, 24, vs.RGB24)
    alpha = vs.core.std.BlankClip(clip, format=vs.GRAY8, color=200)
    with_alpha = clip.std.ClipToProp(alpha, "_Alpha")
    out = upscale(with_alpha, model=plain_onnx, backend="ort-cpu")
    frame = out.get_frame(0)
    assert "_Alpha" in frame.props
    alpha_out = frame.props["_Alpha"]
    assert (alpha_out.width, alpha_out.height) == (64, 48)
    assert abs(float(np.asarray(alpha_out[0]).mean()) - 200) < 3


def test_frames_smaller_than_a_tile_and_one_pixel_edges(tiny_onnx):
    for w, h in [(1, 1), (1, 9), (7, 1), (5, 3)]:
        clip = noise_clip(w, h)
        out = upscale(clip, model=tiny_onnx, backend="ort-cpu", tile=16)
        assert (out.width, out.height) == (2 * w, 2 * h)
        assert np.isfinite(planes(out.get_frame(0))).all()


def _err(**kwargs) -> str:
    clip = kwargs.pop("clip", None) or noise_clip(32, 24)
    with pytest.raises(vs.Error) as info:
        upscale(clip, **kwargs)
    message = str(info.value)
    assert message.startswith("paragon.Upscale: "), message
    return message


def test_bad_parameters_name_the_value_and_the_fix(tiny_onnx, tiny_x3_onnx, tmp_path):
    m = tiny_onnx
    assert "tile must be 0 (automatic) or 1 to 8192" in _err(model=m, tile=-1)
    assert "tile must be 0 (automatic) or 1 to 8192" in _err(model=m, tile=100_000)
    assert "tile must be an integer or [width, height]" in _err(model=m, tile="big")
    assert "overlap must be -1" in _err(model=m, overlap=-5)
    assert "overlap 20 (overlap) is larger than the tile width 8" in _err(model=m, tile=8, overlap=20)
    assert "(the model's receptive radius) is larger than the tile" in _err(model=m, tile=16)
    assert "unknown backend 'cuda'; valid backends: auto, ort-cpu" in _err(model=m, backend="cuda")
    assert "unknown variant 'giant'" in _err(variant="giant")
    assert "no trained model ships for variant 'xl' at scale 2 (shipped: variant='tiny' scale=2" in _err(variant="xl")
    assert "scale must be one of 1, 2, 3, 4, got 5" in _err(model=m, scale=5)
    assert "scale must be an integer" in _err(model=m, scale="2")
    assert "threads must be 0" in _err(model=m, threads=-1)
    assert "fp16 must be True/False (or 1/0), got 'yes'" in _err(model=m, fp16="yes")
    assert "upscales x3, but scale=2 was asked" in _err(model=tiny_x3_onnx)
    assert "does not exist" in _err(model=str(tmp_path / "none.onnx"))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x01garbage" * 50)
    assert "is not a loadable ONNX file" in _err(model=str(garbage))
    assert "unknown file type '.py'" in _err(model=__file__)
    assert "pip install 'vsparagon[trt]'" in _err(model=m, backend="trt")
    assert "needs onnxruntime-gpu" in _err(model=m, backend="ort-cuda")
    assert "join must be 'crop' or 'blend'" in _err(model=m, join="feather")


def test_clips_without_a_constant_format_are_rejected(tiny_onnx):
    a = noise_clip(32, 24)
    b = noise_clip(40, 24)
    mixed = vs.core.std.Splice([a, b], mismatch=True)
    assert "variable format or size" in _err(clip=mixed, model=tiny_onnx)
    with pytest.raises(vs.Error, match=r"paragon\.Upscale: clip must be a video clip"):
        upscale(42, model=tiny_onnx)  # type: ignore[arg-type]
