"""``backend="auto"``: the fastest usable backend, GPU runtimes first (availability faked where no GPU exists)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vsparagon.runtime import gpu_info, sessions
from vsparagon.runtime.backends import AUTO_ORDER, BACKENDS
from vsparagon.runtime.source import open_model

MODELS = Path(__file__).resolve().parents[2] / "models"
REAL_TORCH_PROBLEM = gpu_info.torch_cuda_problem
GPU = gpu_info.Gpu(index=0, name="NVIDIA Fake 100", compute=(8, 9), memory_mib=24000)


@pytest.fixture
def onnx_source(tiny_onnx):
    """An ONNX model with no checkpoint beside it: PyTorch cannot run it."""
    return open_model(Path(tiny_onnx))


@pytest.fixture
def release_source():
    """The shipped tiny x2: an ONNX release with its checkpoint beside it, which PyTorch runs."""
    return open_model(MODELS / "paragonsr_tiny_x2.onnx")


@pytest.fixture
def checkpoint_source():
    return open_model(MODELS / "paragonsr_tiny_x2.safetensors")


@pytest.fixture
def usable(monkeypatch):
    """Make every backend usable (a GPU with every runtime); returns a function that makes one unusable."""
    sessions._say_once.cache_clear()
    for name in AUTO_ORDER:
        monkeypatch.setattr(BACKENDS[name], "unavailable", classmethod(lambda cls: None))
    monkeypatch.setattr(gpu_info, "torch_cuda_problem", lambda report=None: None)

    def block(name: str, reason: str) -> None:
        if name == "torch":
            monkeypatch.setattr(gpu_info, "torch_cuda_problem", lambda report=None: reason)
        else:
            monkeypatch.setattr(BACKENDS[name], "unavailable", classmethod(lambda cls: reason))

    yield block
    sessions._say_once.cache_clear()


def test_auto_order_is_gpu_runtimes_then_torch_cuda_then_cpu():
    assert AUTO_ORDER == ("trt", "ort-trt", "ort-cuda", "torch", "openvino", "ort-cpu")


def test_auto_takes_the_first_usable_in_order(usable, checkpoint_source, capsys):
    picked = []
    for name in AUTO_ORDER:
        picked.append(sessions.pick_auto(checkpoint_source))
        usable(name, f"no {name} here")
    assert picked == list(AUTO_ORDER)
    assert sessions.pick_auto(checkpoint_source) == "torch"  # nothing usable: torch says why when it opens
    assert capsys.readouterr().out == ""


def test_auto_counts_torch_only_for_models_it_can_load(usable, onnx_source, checkpoint_source, release_source):
    for name in ("trt", "ort-trt", "ort-cuda"):
        usable(name, "no GPU")
    assert sessions.pick_auto(checkpoint_source) == "torch"
    assert sessions.pick_auto(release_source) == "torch"  # the checkpoint beside the shipped ONNX
    assert sessions.pick_auto(onnx_source) == "openvino"  # torch runs no ONNX graph
    assert sessions.pick_auto() == "torch"
    assert sessions.first_usable(torch_runs_it=False) == "openvino"


def test_auto_skips_torch_without_cuda(usable, checkpoint_source, monkeypatch, capsys):
    for name in ("trt", "ort-trt", "ort-cuda"):
        usable(name, "no GPU")
    monkeypatch.setattr(gpu_info, "torch_cuda_problem", REAL_TORCH_PROBLEM)
    monkeypatch.setattr(gpu_info, "gpu_report", lambda: gpu_info.GpuReport(problem=gpu_info.NO_DRIVER))
    assert sessions.pick_auto(checkpoint_source) == "openvino"
    monkeypatch.setattr(gpu_info, "gpu_report", lambda: gpu_info.GpuReport(gpus=(GPU,), cuda="12.4"))
    monkeypatch.setattr(gpu_info, "torch_cuda_build", lambda: None)
    assert sessions.pick_auto(checkpoint_source) == "openvino"  # a CPU-only PyTorch beside a GPU
    monkeypatch.setattr(gpu_info, "torch_cuda_build", lambda: "12.4")
    assert sessions.pick_auto(checkpoint_source) == "torch"
    assert "torch" not in capsys.readouterr().err  # PyTorch is everywhere: its skip is not news


def test_installed_but_unusable_gpu_runtime_is_named_once(usable, onnx_source, monkeypatch, capsys):
    usable("trt", "no NVIDIA driver found (fake)")
    usable("ort-trt", "onnxruntime-gpu has no TensorRT provider here (fake)")
    installed = {"trt", "ort-trt"}
    monkeypatch.setattr(sessions, "_installed", lambda name: name in installed)
    for _ in range(3):
        assert sessions.pick_auto(onnx_source) == "ort-cuda"
    assert capsys.readouterr().err.splitlines() == [
        "vsparagon: backend='auto' skips TensorRT: no NVIDIA driver found (fake)",
        "vsparagon: backend='auto' skips ONNX Runtime TensorRT: onnxruntime-gpu has no TensorRT provider here (fake)",
    ]


def test_a_runtime_that_is_not_installed_is_skipped_silently(usable, onnx_source, monkeypatch, capsys):
    usable("trt", "backend='trt' needs TensorRT: pip install tensorrt")
    monkeypatch.setattr(sessions, "_installed", lambda name: False)
    assert sessions.pick_auto(onnx_source) == "ort-trt"
    assert capsys.readouterr().err == ""


def test_resolve_auto_builds_the_picked_backend(usable, onnx_source):
    usable("trt", "no GPU")
    config = sessions.resolve_backend("auto", onnx_source, fp16=False, threads=0, device=1)
    assert config.name == "ort-trt"
    assert config.device == 1


def test_auto_on_this_machine_is_a_cpu_backend(onnx_source, checkpoint_source, release_source, capsys):
    """No GPU here: the real availability checks lead to the CPU backends, quietly for uninstalled GPU runtimes."""
    sessions._say_once.cache_clear()
    assert gpu_info.gpu_report().gpus == ()
    expected = "openvino" if BACKENDS["openvino"].unavailable() is None else "ort-cpu"
    assert sessions.pick_auto(onnx_source) == expected
    assert sessions.pick_auto(checkpoint_source) == expected  # exported for it; torch would run on the CPU
    assert sessions.pick_auto(release_source) == expected
    err = capsys.readouterr().err
    if not sessions._installed("trt"):
        assert "TensorRT" not in err
    if not sessions._installed("ort-cuda"):
        assert "ONNX Runtime" not in err


@pytest.mark.gpu
@pytest.mark.skipif(gpu_info.torch_cuda_problem() is not None, reason="needs a CUDA device and a CUDA build of PyTorch")
def test_auto_on_a_gpu_machine_picks_a_gpu_backend(checkpoint_source, release_source):
    """Where PyTorch runs on CUDA, auto never falls to a CPU backend for a checkpoint or a shipped model."""
    sessions._say_once.cache_clear()
    picked = sessions.pick_auto(checkpoint_source)
    assert picked in ("trt", "ort-trt", "ort-cuda", "torch")
    first_gpu = next((name for name in ("trt", "ort-trt", "ort-cuda") if BACKENDS[name].unavailable() is None), "torch")
    assert picked == first_gpu
    assert sessions.pick_auto(release_source) == first_gpu
