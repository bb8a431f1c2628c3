"""backend='trt': the real backend code on a fake TensorRT and a fake CUDA driver (no GPU here), and on a real GPU.

The fakes (``trt_fakes.py``) compute with ONNX Runtime on the CPU, so outputs are checked against
backend='ort-cpu'. The real TensorRT path runs only in the ``gpu`` test at the end.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs
from helpers import noise_clip, planes
from trt_fakes import FakeCuda, fake_tensorrt

from vsparagon.errors import ConfigError, MissingDependencyError
from vsparagon.runtime import engine_cache, gpu_info, sessions
from vsparagon.runtime.backends import BackendError, cuda_driver, make_backend
from vsparagon.runtime.backends.trt import TensorRT
from vsparagon.runtime.source import open_model

GPU = gpu_info.Gpu(index=0, name="NVIDIA Fake 100", compute=(8, 9), memory_mib=24000)
core = vs.core


class Fakes:
    def __init__(self, monkeypatch, cache: Path, *, devices: int = 1, version: str = "10.99.0"):
        self.cuda = FakeCuda(devices=devices)
        self.trt = fake_tensorrt(self.cuda, version=version)
        self.state = self.trt.state
        monkeypatch.setitem(sys.modules, "tensorrt", self.trt)
        monkeypatch.setattr(cuda_driver, "load_library", lambda names: self.cuda)
        gpus = tuple(
            gpu_info.Gpu(index=i, name=GPU.name, compute=GPU.compute, memory_mib=24000) for i in range(devices)
        )
        report = gpu_info.GpuReport(gpus=gpus, cuda="12.4", problem=None if gpus else "no CUDA device")
        monkeypatch.setattr(gpu_info, "gpu_report", lambda: report)
        monkeypatch.setenv("VSPARAGON_CACHE", str(cache))
        self.cache = cache / "engines"


@pytest.fixture
def fakes(monkeypatch, tmp_path):
    monkeypatch.setattr(sessions, "_sessions", {})
    engine_cache._say_once.cache_clear()
    return Fakes(monkeypatch, tmp_path / "cache")


def _engines(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.engine"))


def test_plugin_output_matches_ort_cpu(fakes, tiny_onnx, capfd):
    clip = noise_clip(48, 32, vs.RGBS, length=3)
    want = core.paragon.Upscale(clip, scale=2, model=tiny_onnx, backend="ort-cpu", fp16=False)
    got = core.paragon.Upscale(clip, scale=2, model=tiny_onnx, backend="trt", fp16=False)
    for n in range(3):
        frame = got.get_frame(n)
        assert frame.props["ParagonBackend"] == "trt"
        assert frame.props["ParagonPrecision"] == "fp32"
        np.testing.assert_allclose(planes(frame), planes(want.get_frame(n)), atol=1e-5)
    out, err = capfd.readouterr()
    assert out == ""  # vspipe writes video to stdout
    assert "building a TensorRT engine for tiny_x2.onnx at 1x3x32x48, fp32" in err
    assert "Building engine done in" in err  # the progress monitor
    assert fakes.state.builds == 1
    assert fakes.cuda.synchronized >= 3
    assert len(_engines(fakes.cache)) == 1


def test_fp16_by_default_on_a_safe_model_within_half_tolerance(fakes, tiny_onnx):
    clip = noise_clip(48, 32, vs.RGBS, length=2)
    want = core.paragon.Upscale(clip, scale=2, model=tiny_onnx, backend="ort-cpu", fp16=False)
    got = core.paragon.Upscale(clip, scale=2, model=tiny_onnx, backend="trt")
    frame = got.get_frame(1)
    assert frame.props["ParagonPrecision"] == "fp16"
    assert np.abs(planes(frame) - planes(want.get_frame(1))).max() < 0.02
    # the fp16 test pattern ran through its own engine (64x64), then the frame's
    assert [p[0] for p in fakes.state.profiles] == [(1, 3, 64, 64), (1, 3, 32, 48)]


def test_unsafe_fp16_output_falls_back_to_fp32_with_one_line(fakes, tiny_onnx, capfd):
    fakes.state.half_inf = True
    clip = noise_clip(48, 32, vs.RGBS, length=1)
    got = core.paragon.Upscale(clip, scale=2, model=tiny_onnx, backend="trt", fp16=True)
    frame = got.get_frame(0)
    assert frame.props["ParagonPrecision"] == "fp32"
    assert np.isfinite(planes(frame)).all()
    err = capfd.readouterr().err
    assert err.count("vsparagon: trt runs tiny_x2.onnx in fp32, not fp16:") == 1
    assert "not finite" in err


def test_second_session_loads_the_cached_engine_and_a_changed_model_rebuilds(fakes, tiny_onnx, tiny_x3_onnx, tmp_path):
    batch = np.random.default_rng(0).random((1, 3, 16, 24), dtype=np.float32)
    first = TensorRT(fp16=False).open(open_model(Path(tiny_onnx))).run(batch)
    second = TensorRT(fp16=False).open(open_model(Path(tiny_onnx))).run(batch)
    assert fakes.state.builds == 1
    assert fakes.state.deserialized == 2
    np.testing.assert_array_equal(first, second)
    # the timing cache of the first build was saved and handed to the next build
    timing = list((fakes.cache / "timing").glob("*.timing"))
    assert [t.name for t in timing] == ["trt10.99.0-NVIDIA_Fake_100-sm89.timing"]
    TensorRT(fp16=False).open(open_model(Path(tiny_x3_onnx))).run(batch)
    assert fakes.state.builds == 2
    assert fakes.state.timing_in[-1] == b"t"
    assert len(_engines(fakes.cache)) == 2


def test_a_corrupt_cached_engine_is_rebuilt_once(fakes, tiny_onnx, capfd):
    batch = np.zeros((1, 3, 16, 16), np.float32)
    TensorRT(fp16=False).open(open_model(Path(tiny_onnx))).run(batch)
    (engine,) = fakes.cache.glob("*.engine")
    engine.write_bytes(b"not an engine at all")  # its checksum no longer matches
    TensorRT(fp16=False).open(open_model(Path(tiny_onnx))).run(batch)
    assert fakes.state.builds == 2
    assert "rebuilding the cached engine" in capfd.readouterr().err


def test_a_foreign_engine_with_a_matching_record_is_rebuilt(fakes, tiny_onnx, capfd):
    """An engine whose record and checksum match but that TensorRT refuses (another TensorRT's plan file)."""
    import hashlib
    import json

    batch = np.zeros((1, 3, 16, 16), np.float32)
    TensorRT(fp16=False).open(open_model(Path(tiny_onnx))).run(batch)
    (engine,) = fakes.cache.glob("*.engine")
    sidecar = engine.with_suffix(".json")
    record = json.loads(sidecar.read_text())
    foreign = b"plan file of another TensorRT"
    engine.write_bytes(foreign)
    record["engine_sha256"] = hashlib.sha256(foreign).hexdigest()
    sidecar.write_text(json.dumps(record))
    out = TensorRT(fp16=False).open(open_model(Path(tiny_onnx))).run(batch)
    assert out.shape == (1, 3, 32, 32)
    assert fakes.state.builds == 2
    err = capfd.readouterr().err
    assert "does not deserialize" in err
    assert "magicTagRead" in err


def test_a_profile_serves_every_size_within_it(fakes, tiny_onnx):
    backend = TensorRT(fp16=False, profile=((16, 16), (32, 32), (64, 64)))
    session = backend.open(open_model(Path(tiny_onnx)))
    rng = np.random.default_rng(1)
    reference = make_backend("ort-cpu").open(open_model(Path(tiny_onnx)))
    for h, w in ((16, 16), (40, 24), (64, 64)):
        batch = rng.random((1, 3, h, w), dtype=np.float32)
        np.testing.assert_allclose(session.run(batch), reference.run(batch), atol=1e-5)
    assert fakes.state.builds == 1
    assert fakes.state.profiles == [((1, 3, 16, 16), (1, 3, 32, 32), (1, 3, 64, 64))]
    with pytest.raises(BackendError, match=r"outside the TensorRT profile 16x16 to 64x64"):
        session.run(np.zeros((1, 3, 80, 16), np.float32))


def test_build_settings_reach_the_builder(fakes, tiny_onnx):
    TensorRT(fp16=False, workspace_mib=512, opt_level=5).open(open_model(Path(tiny_onnx))).run(
        np.zeros((1, 3, 8, 8), np.float32)
    )
    assert fakes.state.workspace == 512 << 20
    assert fakes.state.opt_level == 5


def test_streams_instances_run_concurrently_and_correctly(fakes, tiny_onnx):
    import concurrent.futures

    session = TensorRT(fp16=False, streams=3).open(open_model(Path(tiny_onnx)))
    reference = make_backend("ort-cpu").open(open_model(Path(tiny_onnx)))
    batches = [np.random.default_rng(i).random((1, 3, 16, 16), dtype=np.float32) for i in range(12)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(session.run, batches))
    for batch, out in zip(batches, outs, strict=True):
        np.testing.assert_allclose(out, reference.run(batch), atol=1e-5)
    assert len(fakes.cuda.queues) == 3  # one stream per instance
    assert session.max_parallel == 3


def test_out_of_memory_build_names_the_workspace_and_free_memory(fakes, tiny_onnx):
    fakes.state.fail_build = (
        "[optimizer.cpp::computeCosts] Error Code 10: Internal Error "
        "(Could not find any implementation for node /body/conv.)"
    )
    session = TensorRT(fp16=False, workspace_mib=256).open(open_model(Path(tiny_onnx)))
    with pytest.raises(BackendError) as info:
        session.run(np.zeros((1, 3, 32, 48), np.float32))
    message = str(info.value)
    assert "ran out of memory building tiny_x2.onnx at 1x3x32x48, fp32" in message
    assert "workspace 256 MiB" in message
    assert "20000 MiB of GPU memory free" in message
    assert "smaller tile=" in message
    assert "raise the workspace limit" in message
    assert "\n" not in message
    assert not list(fakes.cache.glob("*.engine"))


def test_plugin_reports_a_failed_build_as_one_line(fakes, tiny_onnx):
    fakes.state.fail_build = "Error Code 2: OutOfMemory (Requested size was 123 bytes.)"
    clip = noise_clip(48, 32, vs.RGBS, length=1)
    node = core.paragon.Upscale(clip, scale=2, model=tiny_onnx, backend="trt", fp16=False)
    with pytest.raises(vs.Error, match=r"paragon.Upscale: frame 0: inference failed: TensorRT ran out of memory"):
        node.get_frame(0)


def test_a_device_that_does_not_exist(fakes, tiny_onnx):
    clip = noise_clip(48, 32, vs.RGBS, length=1)
    with pytest.raises(vs.Error, match=r"paragon.Upscale: device=3 does not exist: the driver sees 1 CUDA GPU; pass"):
        core.paragon.Upscale(clip, scale=2, model=tiny_onnx, backend="trt", fp16=False, device=3)


def test_no_gpu(monkeypatch, tmp_path, tiny_onnx):
    monkeypatch.setattr(sessions, "_sessions", {})
    Fakes(monkeypatch, tmp_path, devices=0)
    assert TensorRT.unavailable() == "backend='trt' needs an NVIDIA GPU: no CUDA device"
    with pytest.raises(BackendError, match=r"device=0 does not exist: the driver sees 0 CUDA GPUs.*backend='ort-cpu'"):
        TensorRT().open(open_model(Path(tiny_onnx)))


def test_no_driver(monkeypatch, tiny_onnx):
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(FakeCuda()))
    monkeypatch.setattr(cuda_driver, "load_library", lambda names: None)
    with pytest.raises(BackendError, match=r"no NVIDIA driver found .*use backend='ort-cpu'"):
        TensorRT().open(open_model(Path(tiny_onnx)))


def test_out_of_device_memory_for_buffers(fakes, tiny_onnx):
    session = TensorRT(fp16=False).open(open_model(Path(tiny_onnx)))
    fakes.cuda.fail_alloc = True
    with pytest.raises(BackendError, match=r"GPU 0 is out of memory \(cuMemAlloc: CUDA_ERROR_OUT_OF_MEMORY\)"):
        session.run(np.zeros((1, 3, 8, 8), np.float32))


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_tensorrt_missing(monkeypatch, tiny_onnx):
    assert TensorRT.unavailable() == (
        "backend='trt' needs TensorRT: pip install 'vsparagon[trt]' (or pip install tensorrt-cu12)"
    )
    with pytest.raises(MissingDependencyError, match=r"pip install 'vsparagon\[trt\]'"):
        TensorRT().open(open_model(Path(tiny_onnx)))
    clip = noise_clip(48, 32, vs.RGBS, length=1)
    with pytest.raises(vs.Error, match=r"^paragon.Upscale: backend='trt' needs TensorRT"):
        core.paragon.Upscale(clip, scale=2, model=tiny_onnx, backend="trt", fp16=False)


def test_available_with_tensorrt_and_a_gpu(fakes):
    assert TensorRT.unavailable() is None
    assert TensorRT().on_gpu()


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"workspace_mib": -1}, "workspace_mib must be >= 0"),
        ({"opt_level": 6}, "opt_level must be 0 to 5"),
        ({"profile": ((64, 64), (32, 32), (128, 128))}, "0 < min <= opt <= max"),
        ({"profile": ((64, 64), (128, 128))}, "0 < min <= opt <= max"),
        ({"profile": ((64, 64, 1), (64, 64, 1), (64, 64, 1))}, "0 < min <= opt <= max"),
    ],
)
def test_bad_settings(options, words):
    with pytest.raises(ConfigError, match=words):
        TensorRT(**options)


def test_default_precision_follows_fp16_safety(tiny_onnx):
    from dataclasses import replace

    descriptor = open_model(Path(tiny_onnx)).descriptor
    assert TensorRT.default_fp16(descriptor, bits=8) is True
    assert TensorRT.default_fp16(replace(descriptor, fp16_safe=False), bits=8) is False


def _cuda_device() -> bool:
    return bool(gpu_info.gpu_report().gpus)


def _end_to_end(tiny_onnx: str, plain_onnx: str, monkeypatch) -> None:
    """Output against ort-cpu, tiled == whole, engines reused by a new script, a changed model rebuilt."""
    monkeypatch.setattr(sessions, "_sessions", {})
    engines = engine_cache.engines_folder()
    clip = noise_clip(96, 64, vs.RGBS, length=2)
    want = core.paragon.Upscale(clip, scale=2, model=tiny_onnx, backend="ort-cpu", fp16=False)
    for fp16, tolerance in ((False, 1e-3), (True, 0.02)):
        got = core.paragon.Upscale(clip, scale=2, model=tiny_onnx, backend="trt", fp16=fp16)
        tiled = core.paragon.Upscale(clip, scale=2, model=tiny_onnx, backend="trt", fp16=fp16, tile=32, overlap=16)
        for n in range(2):
            frame = got.get_frame(n)
            assert frame.props["ParagonPrecision"] == ("fp16" if fp16 else "fp32")
            whole = planes(frame)
            assert np.abs(whole - planes(want.get_frame(n))).max() < tolerance
            assert np.abs(planes(tiled.get_frame(n)) - whole).max() < tolerance
    built = {p.name: p.stat().st_mtime_ns for p in engines.glob("*.engine")}
    assert len(built) >= 3  # fp32 whole and tiled, fp16 whole (and tiled, and the fp16 test pattern)
    monkeypatch.setattr(sessions, "_sessions", {})  # a new script: sessions load the engines from the cache
    core.paragon.Upscale(clip, scale=2, model=tiny_onnx, backend="trt", fp16=False).get_frame(0)
    assert {p.name: p.stat().st_mtime_ns for p in engines.glob("*.engine")} == built
    core.paragon.Upscale(clip, scale=2, model=plain_onnx, backend="trt", fp16=False).get_frame(0)
    assert len(list(engines.glob("*.engine"))) == len(built) + 1  # another graph: another engine


@pytest.mark.slow
def test_end_to_end_on_the_fakes(fakes, tiny_onnx, plain_onnx, monkeypatch):
    _end_to_end(tiny_onnx, plain_onnx, monkeypatch)
    assert fakes.state.deserialized > fakes.state.builds  # the new script loaded what the first built


@pytest.mark.gpu
@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is None or not _cuda_device(), reason="needs TensorRT and a CUDA GPU"
)
def test_real_tensorrt_end_to_end(tiny_onnx, plain_onnx, tmp_path, monkeypatch):
    """The real TensorRT and GPU (UNEXECUTED so far: no GPU was available when it was written)."""
    monkeypatch.setenv("VSPARAGON_CACHE", str(tmp_path))
    _end_to_end(tiny_onnx, plain_onnx, monkeypatch)
