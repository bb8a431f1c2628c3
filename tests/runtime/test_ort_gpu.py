"""``ort-cuda`` and ``ort-trt``: ONNX Runtime on a GPU.

No GPU exists here, so ONNX Runtime's GPU surface is faked: the installed (CPU) build reports the
CUDA and TensorRT providers, a session asked for them really is a CPU session (it computes) that
records its provider options, I/O binding calls and device buffers, and the driver reports one GPU.
Outputs are checked against ``ort-cpu``. Tests marked ``gpu`` run the real thing where a CUDA device is.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import vapoursynth as vs
from helpers import noise_clip, planes

from vsparagon._files import cache_dir
from vsparagon.errors import MissingDependencyError
from vsparagon.runtime import engine_cache, gpu_info, sessions
from vsparagon.runtime.backends import BackendError, make_backend
from vsparagon.runtime.backends import ort_gpu_setup as setup
from vsparagon.runtime.backends.gpu_common import probe_pattern
from vsparagon.runtime.backends.ort_cpu import OrtCpu
from vsparagon.runtime.backends.ort_gpu import OrtCuda, OrtGpuSession, OrtTensorRT
from vsparagon.runtime.source import open_model

MODELS = Path(__file__).resolve().parents[2] / "models"
GPU = gpu_info.Gpu(index=0, name="NVIDIA Fake 100", compute=(8, 9), memory_mib=24000)
REAL_SESSION = ort.InferenceSession
REAL_ORTVALUE = ort.OrtValue.ortvalue_from_shape_and_type
GPU_EPS = [setup.TRT_EP, setup.CUDA_EP, "CPUExecutionProvider"]


class FakeGpu:
    """What the fake GPU runtime saw, and how it behaves."""

    def __init__(self) -> None:
        self.sessions: list[FakeSession] = []
        self.buffers: list[tuple[tuple[int, ...], np.dtype, str, int]] = []
        self.started = {setup.CUDA_EP, setup.TRT_EP}
        """Providers that start when asked (others are dropped, as ONNX Runtime does when their libraries fail)."""
        self.break_half = False
        """Make every fp16 run give inf (an fp16 overflow)."""
        self.half_offset = 0.0
        """Add this to every fp16 output (an fp16 model that computes, but wrongly)."""
        self.fail_run: str | None = None
        self.fail_open: str | None = None
        self.delay = 0.0
        self.running = 0
        self.most_running = 0
        self.lock = threading.Lock()


class FakeSession:
    """An ``InferenceSession`` on the CUDA/TensorRT providers that computes on the CPU."""

    def __init__(self, fake: FakeGpu, path: str, options: Any, providers: list[Any], **kwargs: Any) -> None:
        if fake.fail_open:
            raise RuntimeError(fake.fail_open)
        self.fake = fake
        self.path = path
        self.provider_options = {name: opts for name, opts in providers}
        self.kwargs = kwargs
        self.threads = options.intra_op_num_threads
        self.runs = 0
        self._real = REAL_SESSION(path, options, providers=["CPUExecutionProvider"])
        self._providers = [name for name, _ in providers if name in fake.started] + ["CPUExecutionProvider"]
        self.half = self._real.get_inputs()[0].type == "tensor(float16)"

    def get_providers(self) -> list[str]:
        return self._providers

    def get_inputs(self) -> Any:
        return self._real.get_inputs()

    def get_outputs(self) -> Any:
        return self._real.get_outputs()

    def io_binding(self) -> Any:
        return self._real.io_binding()

    def run_with_iobinding(self, binding: Any, run_options: Any = None) -> None:
        fake = self.fake
        with fake.lock:
            fake.running += 1
            fake.most_running = max(fake.most_running, fake.running)
        try:
            time.sleep(fake.delay)
            if fake.fail_run:
                raise RuntimeError(fake.fail_run)
            self._real.run_with_iobinding(binding, run_options)
            self.runs += 1
            if self.half and (fake.break_half or fake.half_offset):
                (out,) = binding.get_outputs()
                wrong = np.full(out.shape(), np.inf, np.float16) if fake.break_half else out.numpy() + fake.half_offset
                out.update_inplace(wrong.astype(np.float16))
        finally:
            with fake.lock:
                fake.running -= 1


@pytest.fixture
def fake_gpu(monkeypatch, tmp_path) -> FakeGpu:
    """The installed onnxruntime dressed as onnxruntime-gpu on a machine with one GPU; a fresh cache."""
    fake = FakeGpu()
    monkeypatch.setenv("VSPARAGON_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(ort, "get_available_providers", lambda: list(GPU_EPS))

    def session(path: str, options: Any = None, providers: Any = None, **kwargs: Any) -> Any:
        if providers == ["CPUExecutionProvider"]:  # ort-cpu, the reference
            return REAL_SESSION(path, options, providers=providers, **kwargs)
        made = FakeSession(fake, path, options, providers, **kwargs)
        fake.sessions.append(made)
        return made

    def ortvalue(shape: Any, element_type: Any, device_type: str = "cpu", device_id: int = 0) -> Any:
        fake.buffers.append((tuple(shape), np.dtype(element_type), device_type, device_id))
        return REAL_ORTVALUE(shape, element_type, "cpu", 0)

    monkeypatch.setattr(ort, "InferenceSession", session)
    monkeypatch.setattr(ort.OrtValue, "ortvalue_from_shape_and_type", staticmethod(ortvalue))
    monkeypatch.setattr(gpu_info, "gpu_report", lambda: gpu_info.GpuReport(gpus=(GPU,), driver="999.1"))
    monkeypatch.setattr(setup, "tensorrt_problem", lambda: None)
    engine_cache._say_once.cache_clear()
    before = set(sessions.shared_sessions())
    yield fake
    with sessions._lock:  # sessions the plugin opened on the fake runtime must not outlive it
        for key in set(sessions._sessions) - before:
            del sessions._sessions[key]


@pytest.fixture(scope="module")
def source():
    return open_model(MODELS / "paragonsr_tiny_x2.onnx")


def _batch(h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((1, 3, h, w), dtype=np.float32)


def _cpu(source, batch: np.ndarray) -> np.ndarray:
    return OrtCpu().open(source).run(batch)


# --- what is missing, said cheaply --------------------------------------------------------------------------------


def test_the_cpu_build_of_onnxruntime_is_named_with_the_fix():
    """This machine's real onnxruntime is the CPU build: both backends say so, and how to get the GPU one."""
    for cls in (OrtCuda, OrtTensorRT):
        reason = cls.unavailable()
        assert reason is not None
        assert f"backend={cls.name!r}" in reason
        assert "CPU-only build" in reason
        assert "pip install onnxruntime-gpu" in reason
        assert "replaces" in reason


def test_both_builds_installed_with_the_cpu_files_on_top(monkeypatch):
    """pip installs onnxruntime and onnxruntime-gpu into one module folder; the one written last wins."""
    real = setup.importlib.metadata.version
    monkeypatch.setattr(
        setup.importlib.metadata, "version", lambda name: "1.32.0" if name == "onnxruntime-gpu" else real(name)
    )
    reason = str(OrtCuda.unavailable())
    assert "installed beside the CPU-only onnxruntime, and the CPU build's files won" in reason
    assert reason.endswith("pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu")


def test_a_cuda_provider_registered_as_a_plugin_counts():
    """Newer onnxruntime-gpu builds register a bundled CUDA plugin EP, which only get_ep_devices lists."""
    from types import SimpleNamespace

    def runtime(devices: list[str], *, api: bool = True) -> Any:
        listed = [SimpleNamespace(ep_name=name) for name in devices]
        fake = SimpleNamespace(get_available_providers=lambda: ["CPUExecutionProvider"])
        if api:
            fake.get_ep_devices = lambda: listed
        return fake

    assert setup.has_cuda_provider(runtime(["CPUExecutionProvider", setup.CUDA_EP])) is True
    assert setup.has_cuda_provider(runtime(["CPUExecutionProvider"])) is False
    assert setup.has_cuda_provider(runtime([], api=False)) is False
    assert setup.has_cuda_provider(ort) is False  # this machine's CPU build


def test_opening_on_the_cpu_build_is_a_missing_dependency(source):
    with pytest.raises(MissingDependencyError, match="pip install onnxruntime-gpu"):
        OrtCuda().open(source)


def test_no_onnxruntime_at_all(monkeypatch, source):
    real = setup.importlib.util.find_spec
    monkeypatch.setattr(setup.importlib.util, "find_spec", lambda name: None if name == "onnxruntime" else real(name))
    assert OrtCuda.unavailable() == "backend='ort-cuda' needs onnxruntime-gpu: pip install onnxruntime-gpu"
    with pytest.raises(MissingDependencyError, match="needs onnxruntime-gpu: pip install onnxruntime-gpu"):
        OrtTensorRT().open(source)


def test_gpu_build_without_a_gpu(fake_gpu, monkeypatch, source):
    report = gpu_info.GpuReport(problem=gpu_info.NO_DRIVER)
    monkeypatch.setattr(gpu_info, "gpu_report", lambda: report)
    assert OrtCuda.unavailable() == f"backend='ort-cuda' needs an NVIDIA GPU: {gpu_info.NO_DRIVER}"
    with pytest.raises(BackendError, match="needs an NVIDIA GPU: no NVIDIA driver found"):
        OrtCuda().open(source)
    assert fake_gpu.sessions == []


def test_a_gpu_index_that_does_not_exist(fake_gpu, source):
    with pytest.raises(BackendError) as caught:
        OrtCuda(device=3).open(source)
    assert str(caught.value) == (
        "device=3 does not exist: this process sees 1 CUDA GPU(s) (0: NVIDIA Fake 100); pass device=0"
    )


def test_available_with_the_gpu_build_and_a_gpu(fake_gpu):
    assert OrtCuda.unavailable() is None
    assert OrtTensorRT.unavailable() is None


def test_ort_trt_needs_the_tensorrt_provider_and_libraries(fake_gpu, monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: [setup.CUDA_EP, "CPUExecutionProvider"])
    assert "has no TensorRT provider; use backend='ort-cuda'" in str(OrtTensorRT.unavailable())
    assert OrtCuda.unavailable() is None
    monkeypatch.setattr(ort, "get_available_providers", lambda: list(GPU_EPS))
    monkeypatch.setattr(setup, "tensorrt_problem", lambda: "no TensorRT here: pip install tensorrt")
    assert OrtTensorRT.unavailable() == "no TensorRT here: pip install tensorrt"


def test_tensorrt_libraries_are_looked_up_by_name_then_in_pip_folders(tmp_path):
    tried: list[str] = []

    def loader(present: set[str]):
        def load(name: str) -> None:
            tried.append(name)
            if name not in present:
                raise OSError(f"{name}: cannot open shared object file")

        return load

    assert setup.find_tensorrt(loader({"libnvinfer.so.10"}), [tmp_path]) is None
    assert tried[0] == "libnvinfer.so.10"
    assert "libnvonnxparser.so.10" in tried
    in_pip = str(tmp_path / "libnvinfer.so.10")
    tried.clear()
    assert setup.find_tensorrt(loader({in_pip}), [tmp_path]) is None
    assert in_pip in tried
    reason = setup.find_tensorrt(loader(set()), [tmp_path])
    assert reason == (
        "ONNX Runtime's TensorRT provider needs TensorRT 10.x (libnvinfer.so.10 was not found): "
        "pip install tensorrt, or use backend='ort-cuda'"
    )


def test_preloading_cuda_never_reaches_stdout(monkeypatch, capsys):
    monkeypatch.setattr(ort, "preload_dlls", lambda: print("Failed to load libcudnn.so.9: not found"), raising=False)
    setup.preload_cuda.cache_clear()
    try:
        assert setup.preload_cuda() == "Failed to load libcudnn.so.9: not found"
    finally:
        setup.preload_cuda.cache_clear()
    assert capsys.readouterr().out == ""


# --- sessions: options, pool, buffers --------------------------------------------------------------------------


def test_ort_cuda_opens_one_session_per_stream_with_its_options(fake_gpu, source):
    session = OrtCuda(device=0, streams=2, fp16=False).open(source)
    assert isinstance(session, OrtGpuSession)
    assert session.max_parallel == 2
    assert len(fake_gpu.sessions) == 2
    assert len({id(s) for s in fake_gpu.sessions}) == 2
    for made in fake_gpu.sessions:
        assert list(made.provider_options) == [setup.CUDA_EP]
        options = made.provider_options[setup.CUDA_EP]
        assert options["device_id"] == 0
        assert options["cudnn_conv_algo_search"] == "EXHAUSTIVE"
        assert made.kwargs == {"enable_fallback": 0}  # no retry on the CPU, no "EP Error" on stdout
    assert session.precision == "fp32"
    assert session.budget_bytes == 12000 * 2**20


def test_outputs_match_the_cpu_backend_and_buffers_are_made_once_per_shape(fake_gpu, source):
    session = OrtCuda(streams=2).open(source)
    for seed in range(4):  # two calls on each instance
        batch = _batch(seed=seed)
        np.testing.assert_allclose(session.run(batch), _cpu(source, batch), atol=1e-5)
    assert [made.runs for made in fake_gpu.sessions] == [2, 2]
    made = fake_gpu.buffers
    assert made == [((1, 3, 24, 32), np.float32, "cuda", 0), ((1, 3, 48, 64), np.float32, "cuda", 0)] * 2
    session.run(_batch(16, 16))  # a new shape: new buffers on that instance only
    assert fake_gpu.buffers[4:] == [((1, 3, 16, 16), np.float32, "cuda", 0), ((1, 3, 32, 32), np.float32, "cuda", 0)]


def test_buffers_go_to_the_chosen_device(fake_gpu, monkeypatch, source):
    second = gpu_info.Gpu(index=1, name="NVIDIA Fake 200", compute=(9, 0), memory_mib=80000)
    monkeypatch.setattr(gpu_info, "gpu_report", lambda: gpu_info.GpuReport(gpus=(GPU, second)))
    session = OrtCuda(device=1, streams=1).open(source)
    session.run(_batch())
    assert {opts[setup.CUDA_EP]["device_id"] for opts in (s.provider_options for s in fake_gpu.sessions)} == {1}
    assert {(device, index) for *_, device, index in fake_gpu.buffers} == {("cuda", 1)}
    assert session.budget_bytes == 40000 * 2**20


def test_frames_in_flight_run_at_once_after_each_instance_first_ran_alone(fake_gpu, source):
    session = OrtCuda(streams=2).open(source)
    fake_gpu.delay = 0.3
    batch = _batch()

    def two_at_once() -> None:
        threads = [threading.Thread(target=session.run, args=(batch,)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    two_at_once()  # each instance's first run of this shape: one at a time (TensorRT builds its engine once)
    assert fake_gpu.most_running == 1
    two_at_once()
    assert fake_gpu.most_running == 2
    assert [made.runs for made in fake_gpu.sessions] == [2, 2]


def test_ort_cpu_fallback_is_refused(fake_gpu, source):
    fake_gpu.started = set()
    with pytest.raises(BackendError) as caught:
        OrtCuda().open(source)
    message = str(caught.value)
    assert "CUDA provider did not start, so backend='ort-cuda' would run on the CPU" in message
    assert "pip install 'onnxruntime-gpu[cuda,cudnn]'" in message
    assert "backend='ort-cpu'" in message


def test_a_session_that_fails_to_open_names_the_gpu(fake_gpu, source):
    fake_gpu.fail_open = "[ONNXRuntimeError] : 1 : FAIL : CUDA failure 2: out of memory"
    with pytest.raises(BackendError) as caught:
        OrtCuda().open(source)
    assert str(caught.value) == (
        "ONNX Runtime could not open paragonsr_tiny_x2.onnx on GPU 0 (NVIDIA Fake 100) with backend='ort-cuda': "
        "CUDA failure 2: out of memory"
    )


def test_out_of_memory_while_running_says_to_tile(fake_gpu, source):
    session = OrtCuda(streams=1).open(source)
    fake_gpu.fail_run = "Failed to allocate memory for requested buffer of size 1073741824"
    with pytest.raises(BackendError, match=r"batch of shape \(1, 3, 24, 32\).*pass a smaller tile="):
        session.run(_batch())


# --- fp16 ------------------------------------------------------------------------------------------------------


def test_fp16_is_the_default_for_fp16_safe_models_only(source):
    unsafe = open_model(MODELS / "paragonsr_tiny_video_x2.onnx").descriptor
    for cls in (OrtCuda, OrtTensorRT):
        assert cls.default_fp16(source.descriptor, bits=8) is source.descriptor.fp16_safe is True
        assert cls.half_refusal() is None
    import dataclasses

    assert OrtCuda.default_fp16(dataclasses.replace(unsafe, fp16_safe=False), bits=8) is False


def test_fp16_session_checks_itself_and_stays_fp16(fake_gpu, source, capsys):
    session = OrtCuda(streams=2, fp16=True).open(source)
    assert session.precision == "fp16"
    assert session.input_dtype == np.float16
    # two fp16 instances, and one fp32 instance on the CUDA provider for the check
    assert [made.half for made in fake_gpu.sessions] == [True, True, False]
    assert [made.runs for made in fake_gpu.sessions] == [1, 0, 1]
    batch = _batch()
    np.testing.assert_allclose(session.run(batch), _cpu(source, batch), atol=0.02)
    assert capsys.readouterr().err == ""


def test_non_finite_fp16_falls_back_to_fp32_with_one_line(fake_gpu, source, capsys):
    fake_gpu.break_half = True
    session = OrtCuda(streams=2, fp16=True).open(source)
    assert session.precision == "fp32"
    assert session.input_dtype == np.float32
    assert capsys.readouterr().err == (
        "vsparagon: ort-cuda runs paragonsr_tiny_x2.onnx in fp32, not fp16: "
        "its fp16 output on a test pattern is not finite (inf/NaN)\n"
    )
    assert [made.half for made in fake_gpu.sessions] == [True, True, False, False, False]
    assert len(session.pool.instances) == 2
    assert all(not instance.session.half for instance in session.pool.instances)
    batch = _batch()
    np.testing.assert_allclose(session.run(batch), _cpu(source, batch), atol=1e-5)


def test_fp16_out_of_tolerance_falls_back_too(fake_gpu, source, capsys):
    fake_gpu.half_offset = 0.25
    session = OrtCuda(streams=1, fp16=True).open(source)
    assert session.precision == "fp32"
    err = capsys.readouterr().err
    assert err.startswith("vsparagon: ort-cuda runs paragonsr_tiny_x2.onnx in fp32, not fp16: its fp16 output differs")
    assert err.count("\n") == 1


def test_results_are_not_overwritten_by_the_next_run(fake_gpu, source):
    session = OrtCuda(streams=1).open(source)
    first, second = _batch(seed=1), _batch(seed=2)
    kept = session.run(first)
    session.run(second)  # the same instance and buffers
    np.testing.assert_allclose(kept, _cpu(source, first), atol=1e-5)


def test_the_check_runs_the_test_pattern(fake_gpu, source):
    OrtCuda(streams=1, fp16=True).open(source)
    assert fake_gpu.buffers[0][:2] == (probe_pattern(3).shape, np.float16)
    assert fake_gpu.buffers[2][:2] == (probe_pattern(3).shape, np.float32)


# --- ort-trt: provider options and the engine cache ---------------------------------------------------------------


def test_ort_trt_puts_tensorrt_first_with_its_caches(fake_gpu, source):
    session = OrtTensorRT(streams=2, fp16=False).open(source)
    np.testing.assert_allclose(session.run(_batch()), _cpu(source, _batch()), atol=1e-5)
    (first, second) = fake_gpu.sessions
    assert list(first.provider_options) == [setup.TRT_EP, setup.CUDA_EP]
    trt = first.provider_options[setup.TRT_EP]
    assert trt == second.provider_options[setup.TRT_EP]
    root = cache_dir() / "engines" / "ort-trt"
    engines, timing = Path(trt["trt_engine_cache_path"]), Path(trt["trt_timing_cache_path"])
    assert engines.parent == root
    assert timing == root / "timing-NVIDIA_Fake_100-sm89"
    assert trt["trt_fp16_enable"] is False
    assert trt["trt_engine_cache_enable"] is True
    assert trt["trt_timing_cache_enable"] is True
    assert trt["device_id"] == 0
    assert engines.name.startswith("paragonsr_tiny_x2-")
    assert "-fp32-NVIDIA_Fake_100-sm89-ort" in engines.name
    entry = json.loads((engines / "entry.json").read_text())
    assert entry["backend"] == "ort-trt"
    assert entry["precision"] == "fp32"
    assert entry["compute"] == "8.9"
    assert entry["onnx"] == str(source.path)
    assert len(entry["onnx_sha256"]) == 64


def test_ort_trt_fp16_has_its_own_engines(fake_gpu, source):
    OrtTensorRT(streams=1, fp16=True).open(source)
    half, check = fake_gpu.sessions
    options = half.provider_options[setup.TRT_EP]
    assert options["trt_fp16_enable"] is True
    assert "-fp16-" in options["trt_engine_cache_path"]
    assert list(check.provider_options) == [setup.CUDA_EP]  # the fp32 reference builds no engine


def test_a_changed_model_or_gpu_gets_another_engine_folder(tmp_path, fake_gpu, source):
    model = tmp_path / "m.onnx"
    model.write_bytes(source.path.read_bytes())
    same = setup.engine_folders(model, fp16=False, gpu=GPU, ort_version="1.0")
    assert setup.engine_folders(model, fp16=False, gpu=GPU, ort_version="1.0") == same
    model.write_bytes(source.path.read_bytes() + b"\0")  # same name, other bytes
    assert setup.engine_folders(model, fp16=False, gpu=GPU, ort_version="1.0")[0] != same[0]
    other_gpu = gpu_info.Gpu(index=0, name="NVIDIA Fake 100", compute=(9, 0), memory_mib=24000)
    moved = setup.engine_folders(model, fp16=False, gpu=other_gpu, ort_version="1.0")
    assert moved[0] != same[0]
    assert moved[1] != same[1]
    assert setup.engine_folders(model, fp16=False, gpu=GPU, ort_version="1.1")[0] != same[0]


def test_an_unwritable_cache_falls_back_to_a_temporary_folder(tmp_path, monkeypatch, source, capsys):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    monkeypatch.setenv("VSPARAGON_CACHE", str(blocked))
    engine_cache._say_once.cache_clear()
    engines, timing = setup.engine_folders(source.path, fp16=False, gpu=GPU, ort_version="1.0")
    assert engines.is_dir()
    assert timing.is_dir()
    assert not engines.is_relative_to(blocked)
    assert engines.parent.name == "ort-trt"
    err = capsys.readouterr().err
    assert err.startswith(f"vsparagon: the engine cache folder {blocked / 'engines'} is not writable")
    assert "set VSPARAGON_CACHE to a writable folder" in err
    assert err.count("\n") == 1


def test_tensorrt_provider_that_did_not_start_is_refused(fake_gpu, source):
    fake_gpu.started = {setup.CUDA_EP}  # libnvinfer failed to load: ONNX Runtime drops the provider, warns, goes on
    with pytest.raises(
        BackendError, match=r"TensorRT provider did not start .* pip install tensorrt, or use backend='ort-cuda'"
    ):
        OrtTensorRT().open(source)


def test_ort_trt_refuses_when_tensorrt_is_missing(fake_gpu, monkeypatch, source):
    monkeypatch.setattr(setup, "tensorrt_problem", lambda: "TensorRT is missing: pip install tensorrt")
    with pytest.raises(BackendError, match=r"^TensorRT is missing: pip install tensorrt$"):
        OrtTensorRT().open(source)
    assert fake_gpu.sessions == []


# --- through VapourSynth ---------------------------------------------------------------------------------------


def test_plugin_ort_cuda_matches_ort_cpu(fake_gpu, source):
    clip = noise_clip(40, 28, length=4)
    reference = clip.paragon.Upscale(model=str(source.path), backend="ort-cpu", fp16=False)
    full = clip.paragon.Upscale(model=str(source.path), backend="ort-cuda", fp16=False)
    half = clip.paragon.Upscale(model=str(source.path), backend="ort-cuda")  # fp16 by default: a bounded model
    for n in range(clip.num_frames):
        want = planes(reference.get_frame(n))
        np.testing.assert_allclose(planes(full.get_frame(n)), want, atol=1e-5)
        frame = half.get_frame(n)
        np.testing.assert_allclose(planes(frame), want, atol=0.02)
    assert frame.props["ParagonBackend"] == "ort-cuda"
    assert frame.props["ParagonPrecision"] == "fp16"


def test_plugin_errors_are_one_line(fake_gpu, source):
    clip = noise_clip(16, 16)
    with pytest.raises(vs.Error, match=r"^paragon\.Upscale: device=2 does not exist: .*pass device=0$"):
        clip.paragon.Upscale(model=str(source.path), backend="ort-cuda", device=2)


def test_plugin_without_the_gpu_build():
    clip = noise_clip(16, 16)
    with pytest.raises(vs.Error, match=r"^paragon\.Upscale: backend='ort-trt' needs onnxruntime-gpu, .*CPU-only build"):
        clip.paragon.Upscale(model=str(MODELS / "paragonsr_tiny_x2.onnx"), backend="ort-trt")


def test_make_backend_builds_the_gpu_configs():
    assert isinstance(make_backend("ort-cuda", device=1), OrtCuda)
    assert make_backend("ort-trt").on_gpu() is True


# --- on a real GPU ---------------------------------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(OrtCuda.unavailable() is not None, reason=f"{OrtCuda.unavailable()}")
needs_trt = pytest.mark.skipif(OrtTensorRT.unavailable() is not None, reason=f"{OrtTensorRT.unavailable()}")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("fp16", [False, True])
def test_gpu_ort_cuda_matches_the_cpu(source, fp16):
    clip = noise_clip(96, 64, length=3)
    want = clip.paragon.Upscale(model=str(source.path), backend="ort-cpu", fp16=False)
    got = clip.paragon.Upscale(model=str(source.path), backend="ort-cuda", fp16=fp16)
    tiled = clip.paragon.Upscale(model=str(source.path), backend="ort-cuda", fp16=fp16, tile=32)
    for n in range(clip.num_frames):
        np.testing.assert_allclose(planes(got.get_frame(n)), planes(want.get_frame(n)), atol=0.02 if fp16 else 1e-4)
        np.testing.assert_allclose(planes(tiled.get_frame(n)), planes(got.get_frame(n)), atol=0.02 if fp16 else 1e-4)


@pytest.mark.gpu
@needs_trt
def test_gpu_ort_trt_reuses_its_engine(source, tmp_path, monkeypatch):
    monkeypatch.setenv("VSPARAGON_CACHE", str(tmp_path))
    batch = _batch(64, 64)
    first = OrtTensorRT(streams=1, fp16=True).open(source)
    np.testing.assert_allclose(first.run(batch), _cpu(source, batch), atol=0.02)
    engines = sorted((tmp_path / "engines" / "ort-trt").rglob("*.engine"))
    assert engines
    stamps = [p.stat().st_mtime_ns for p in engines]
    again = OrtTensorRT(streams=1, fp16=True).open(source)
    np.testing.assert_allclose(again.run(batch), first.run(batch), atol=1e-3)
    assert sorted((tmp_path / "engines" / "ort-trt").rglob("*.engine")) == engines
    assert [p.stat().st_mtime_ns for p in engines] == stamps
