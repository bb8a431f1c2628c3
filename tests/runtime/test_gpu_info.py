"""What the NVIDIA driver reports, read through ctypes: parsed from fake libraries, and the real call here."""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

import pytest

from vsparagon.runtime import gpu_info

H100 = {"name": b"NVIDIA H100 80GB HBM3", 75: 9, 76: 0, "memory": 81559 * 1024 * 1024}
L4 = {"name": b"NVIDIA L4", 75: 8, 76: 9, "memory": 22994 * 1024 * 1024}


class FakeCuda:
    """The few libcuda entry points gpu_info calls, writing through the ctypes pointers it passes."""

    def __init__(self, devices: list[dict[Any, Any]], *, init: int = 0, version: int = 12040, v2: bool = True):
        self.devices, self.init, self.version = devices, init, version
        if v2:
            self.cuDeviceTotalMem_v2 = self._total_mem
        else:
            self.cuDeviceTotalMem = self._total_mem

    def cuInit(self, flags: int) -> int:
        assert flags == 0
        return self.init

    def cuDriverGetVersion(self, out: Any) -> int:
        out.contents.value = self.version
        return 0

    def cuDeviceGetCount(self, out: Any) -> int:
        out.contents.value = len(self.devices)
        return 0

    def cuDeviceGet(self, out: Any, ordinal: int) -> int:
        out.contents.value = ordinal
        return 0

    def cuDeviceGetName(self, buffer: Any, length: int, device: int) -> int:
        assert length == len(buffer) >= 100
        buffer.value = self.devices[device]["name"]
        return 0

    def cuDeviceGetAttribute(self, out: Any, attribute: int, device: int) -> int:
        out.contents.value = self.devices[device][attribute]
        return 0

    def _total_mem(self, out: Any, device: int) -> int:
        out.contents.value = self.devices[device]["memory"]
        return 0


class FakeNvml:
    def __init__(self, version: bytes = b"550.54.15", *, init: int = 0) -> None:
        self.version, self.init, self.shutdowns = version, init, 0

    def nvmlInit_v2(self) -> int:
        return self.init

    def nvmlSystemGetDriverVersion(self, buffer: Any, length: int) -> int:
        buffer.value = self.version
        return 0

    def nvmlDeviceGetHandleByIndex_v2(self, index: int, out: Any) -> int:
        return 0 if index == 0 else 2  # NVML_ERROR_INVALID_ARGUMENT

    def nvmlDeviceGetMemoryInfo(self, handle: Any, out: Any) -> int:
        out.contents.total, out.contents.used = 8 << 30, 1536 << 20
        return 0

    def nvmlShutdown(self) -> int:
        self.shutdowns += 1
        return 0


def loader(cuda: Any = None, nvml: Any = None):
    def load(names):
        if any("cuda" in name for name in names):
            return cuda
        assert any("nvidia-ml" in name or "nvml" in name for name in names), names
        return nvml

    return load


def test_two_gpus_the_driver_and_cuda_version():
    nvml = FakeNvml()
    report = gpu_info.read_report(loader(FakeCuda([H100, L4]), nvml))
    assert report.problem is None
    assert report.driver == "550.54.15"
    assert report.cuda == "12.4"
    assert report.gpus == (
        gpu_info.Gpu(index=0, name="NVIDIA H100 80GB HBM3", compute=(9, 0), memory_mib=81559),
        gpu_info.Gpu(index=1, name="NVIDIA L4", compute=(8, 9), memory_mib=22994),
    )
    assert report.gpus[1].describe() == "NVIDIA L4 (compute 8.9, 22994 MiB)"
    assert report.device(1) is report.gpus[1]
    assert report.device(2) is None
    assert nvml.shutdowns == 1


def test_old_total_mem_entry_point_and_cuda_13_version():
    report = gpu_info.read_report(loader(FakeCuda([L4], version=13010, v2=False)))
    assert report.cuda == "13.1"
    assert report.gpus[0].memory_mib == 22994
    assert report.driver is None  # no NVML: the rest still reported


def test_no_driver_library():
    report = gpu_info.read_report(loader(None, None))
    assert report == gpu_info.GpuReport(problem=gpu_info.NO_DRIVER)
    assert report.problem.startswith("no NVIDIA driver found")


@pytest.mark.parametrize(
    ("code", "words"),
    [(100, "sees no CUDA device"), (35, "update the driver"), (999, "failed to start"), (3, "cuInit returned error 3")],
)
def test_cuinit_failure_is_named(code, words):
    report = gpu_info.read_report(loader(FakeCuda([H100], init=code), FakeNvml()))
    assert report.gpus == ()
    assert words in report.problem
    assert report.driver == "550.54.15"
    assert report.cuda == "12.4"


def test_zero_devices_is_a_problem_not_an_empty_success():
    report = gpu_info.read_report(loader(FakeCuda([])))
    assert report.gpus == ()
    assert "CUDA_ERROR_NO_DEVICE" in report.problem


def test_a_failing_call_or_a_broken_library_never_raises():
    cuda = FakeCuda([H100])
    cuda.cuDeviceGetName = lambda buffer, length, device: 1  # CUDA_ERROR_INVALID_VALUE
    report = gpu_info.read_report(loader(cuda, FakeNvml()))
    assert report.gpus == ()
    assert report.problem == "the CUDA driver could not be queried (cuDeviceGetName returned CUDA error 1)"

    class Broken:
        def __getattr__(self, name):
            raise AttributeError(f"undefined symbol: {name}")

    report = gpu_info.read_report(loader(Broken(), Broken()))
    assert report.driver is None
    assert "undefined symbol: cuInit" in report.problem


def test_nvml_that_fails_to_start_leaves_the_driver_unknown():
    report = gpu_info.read_report(loader(FakeCuda([H100]), FakeNvml(init=9)))
    assert report.driver is None
    assert len(report.gpus) == 1


def test_memory_used_from_nvml():
    assert gpu_info.memory_used_mib(0, load=loader(nvml=FakeNvml())) == 1536
    assert gpu_info.memory_used_mib(1, load=loader(nvml=FakeNvml())) is None
    assert gpu_info.memory_used_mib(0, load=loader()) is None


def test_torch_cuda_problem(monkeypatch):
    with_gpu = gpu_info.GpuReport(gpus=(gpu_info.Gpu(index=0, name="G", compute=(8, 6), memory_mib=1),))
    monkeypatch.setattr(gpu_info, "torch_cuda_build", lambda: None)
    assert "CPU-only build" in gpu_info.torch_cuda_problem(with_gpu)
    monkeypatch.setattr(gpu_info, "torch_cuda_build", lambda: "12.4")
    assert gpu_info.torch_cuda_problem(with_gpu) is None
    assert gpu_info.torch_cuda_problem(gpu_info.GpuReport(problem="no GPU (fake)")) == "no GPU (fake)"
    # a driver for CUDA 12.2 runs a 12.4 build (minor-version compatibility), never a 13.0 one
    old_driver = gpu_info.GpuReport(gpus=with_gpu.gpus, cuda="12.2")
    assert gpu_info.torch_cuda_problem(old_driver) is None
    monkeypatch.setattr(gpu_info, "torch_cuda_build", lambda: "13.0")
    assert "built for CUDA 13.0, and the NVIDIA driver supports CUDA 12.2 at most" in gpu_info.torch_cuda_problem(
        old_driver
    )


def test_torch_cuda_build_read_from_its_version_file(tmp_path):
    version = tmp_path / "version.py"
    version.write_text("__version__ = '2.9.0+cu126'\ncuda: Optional[str] = '12.6'\nhip = None\n")
    assert gpu_info.cuda_of_build(version) == "12.6"
    version.write_text("__version__ = '2.9.0+cpu'\ncuda: Optional[str] = None\n")
    assert gpu_info.cuda_of_build(version) is None
    version.write_text("cuda = '11.8'\n")  # older releases had no annotation
    assert gpu_info.cuda_of_build(version) == "11.8"
    assert gpu_info.cuda_of_build(tmp_path / "missing.py") is None


def test_torch_cuda_build_of_the_installed_torch():
    import torch

    assert gpu_info.torch_cuda_build() == torch.version.cuda


def test_the_real_driver_query_on_this_machine():
    """This machine has no NVIDIA driver: the real ctypes path says so, without raising."""
    gpu_info.gpu_report.cache_clear()
    report = gpu_info.gpu_report()
    assert gpu_info.gpu_report() is report  # read once
    if ctypes.util.find_library("cuda") is None:
        assert report == gpu_info.GpuReport(problem=gpu_info.NO_DRIVER)
    else:  # a driver is installed: whatever it says is well-formed
        assert report.gpus or report.problem
    shown = gpu_info.describe(report)
    assert set(shown) == {"gpus", "driver", "cuda (driver)", "torch cuda build"}


def _torch_sees_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _torch_sees_cuda(), reason="needs a CUDA device (PyTorch sees none)")
def test_the_driver_reports_the_gpus_torch_sees():
    import torch

    gpu_info.gpu_report.cache_clear()
    report = gpu_info.gpu_report()
    assert report.problem is None
    assert len(report.gpus) == torch.cuda.device_count()
    for gpu in report.gpus:
        props = torch.cuda.get_device_properties(gpu.index)
        assert gpu.name == props.name
        assert gpu.compute == (props.major, props.minor)
        assert gpu.memory_mib == props.total_memory // (1024 * 1024)
    assert report.driver
    assert report.driver[0].isdigit()
    major, minor = (int(v) for v in report.cuda.split("."))
    assert (major, minor) >= tuple(int(v) for v in torch.version.cuda.split(".")[:2])  # the driver runs torch's CUDA
    assert gpu_info.torch_cuda_problem() is None
    before = gpu_info.memory_used_mib(0)
    block = torch.empty(256 * 1024 * 1024, dtype=torch.uint8, device="cuda")
    after = gpu_info.memory_used_mib(0)
    del block
    assert before is not None
    assert after is not None
    assert after - before >= 200  # NVML sees the 256 MiB this process took
