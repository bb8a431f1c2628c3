"""Which NVIDIA GPUs this process can use, read from the driver itself (no PyTorch, no CUDA toolkit).

The CUDA driver library (``libcuda``) names the devices, their compute capability and memory
and the CUDA version the driver supports; NVML (``libnvidia-ml``) gives the driver's version.
Both are loaded with :mod:`ctypes`. Nothing here raises: a machine without them reports
why there is no GPU.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.util
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: ``cuDeviceGetAttribute`` codes (cuda.h ``CUdevice_attribute``).
_COMPUTE_MAJOR, _COMPUTE_MINOR = 75, 76
#: ``CUresult`` codes worth naming (cuda.h).
_CUDA_ERRORS = {
    35: "the NVIDIA driver is older than this CUDA runtime (CUDA_ERROR_INSUFFICIENT_DRIVER); update the driver",
    100: "the NVIDIA driver sees no CUDA device (CUDA_ERROR_NO_DEVICE; check CUDA_VISIBLE_DEVICES)",
    999: "the CUDA driver failed to start (CUDA_ERROR_UNKNOWN; is the GPU in use by a VM or in a bad state?)",
}
_CUDA_LIBRARIES = ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so")
_NVML_LIBRARIES = ("nvml.dll",) if sys.platform == "win32" else ("libnvidia-ml.so.1", "libnvidia-ml.so")
NO_DRIVER = "no NVIDIA driver found (libcuda is not installed); the GPU backends need an NVIDIA GPU and its driver"


@dataclass(frozen=True, kw_only=True)
class Gpu:
    """One CUDA device as the driver reports it."""

    index: int
    """The ``device=`` index (after ``CUDA_VISIBLE_DEVICES``)."""
    name: str
    """Marketing name, e.g. ``NVIDIA H100 80GB HBM3``."""
    compute: tuple[int, int]
    """Compute capability (major, minor), e.g. (9, 0)."""
    memory_mib: int
    """Total device memory in MiB."""

    def describe(self) -> str:
        """``NVIDIA H100 80GB HBM3 (compute 9.0, 81559 MiB)``."""
        return f"{self.name} (compute {self.compute[0]}.{self.compute[1]}, {self.memory_mib} MiB)"


@dataclass(frozen=True, kw_only=True)
class GpuReport:
    """The GPUs, the driver and the CUDA version it supports, or why there is no GPU."""

    gpus: tuple[Gpu, ...] = ()
    """Every device the driver lists, in ``device=`` order."""
    driver: str | None = None
    """The NVIDIA driver version (``550.54.15``), when NVML answered."""
    cuda: str | None = None
    """The newest CUDA version the driver supports (``12.4``), when libcuda answered."""
    problem: str | None = None
    """Why no GPU can be used (None when there is at least one)."""

    def device(self, index: int) -> Gpu | None:
        """The GPU of ``device=index``, or None when there is no such GPU."""
        return next((gpu for gpu in self.gpus if gpu.index == index), None)


Loader = Callable[[Sequence[str]], Any]
"""Loads the first library of a list of names that exists; None when none does."""


def load_library(names: Sequence[str]) -> Any:
    """The first of ``names`` that :class:`ctypes.CDLL` can load, or None."""
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


@functools.cache
def gpu_report() -> GpuReport:
    """What the driver reports for this process, read once (the GPUs a process sees do not change)."""
    return read_report(load_library)


def read_report(load: Loader) -> GpuReport:
    """The report from the libraries ``load`` gives; never raises (a failure becomes :attr:`GpuReport.problem`)."""
    try:
        driver = _driver_version(load(_NVML_LIBRARIES))
    except Exception:  # NVML is optional: only the driver's version comes from it
        driver = None
    try:
        return _read_cuda(load(_CUDA_LIBRARIES), driver)
    except Exception as exc:
        return GpuReport(driver=driver, problem=f"the CUDA driver could not be queried ({exc or type(exc).__name__})")


def _read_cuda(cuda: Any, driver: str | None) -> GpuReport:
    if cuda is None:
        return GpuReport(driver=driver, problem=NO_DRIVER)
    code = cuda.cuInit(0)
    version = ctypes.c_int(0)
    cuda_version = None
    if cuda.cuDriverGetVersion(ctypes.pointer(version)) == 0 and version.value > 0:
        cuda_version = f"{version.value // 1000}.{version.value % 1000 // 10}"  # 12040 -> 12.4
    if code != 0:
        return GpuReport(driver=driver, cuda=cuda_version, problem=_cuda_error(code))
    count = ctypes.c_int(0)
    _check(cuda.cuDeviceGetCount(ctypes.pointer(count)), "cuDeviceGetCount")
    gpus = tuple(_device(cuda, i) for i in range(count.value))
    problem = None if gpus else _CUDA_ERRORS[100]
    return GpuReport(gpus=gpus, driver=driver, cuda=cuda_version, problem=problem)


def _device(cuda: Any, index: int) -> Gpu:
    handle = ctypes.c_int(0)
    _check(cuda.cuDeviceGet(ctypes.pointer(handle), index), "cuDeviceGet")
    name = ctypes.create_string_buffer(256)
    _check(cuda.cuDeviceGetName(name, len(name), handle.value), "cuDeviceGetName")
    major, minor, memory = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_size_t(0)
    _check(cuda.cuDeviceGetAttribute(ctypes.pointer(major), _COMPUTE_MAJOR, handle.value), "cuDeviceGetAttribute")
    _check(cuda.cuDeviceGetAttribute(ctypes.pointer(minor), _COMPUTE_MINOR, handle.value), "cuDeviceGetAttribute")
    total_mem = getattr(cuda, "cuDeviceTotalMem_v2", None) or cuda.cuDeviceTotalMem
    _check(total_mem(ctypes.pointer(memory), handle.value), "cuDeviceTotalMem")
    return Gpu(
        index=index,
        name=name.value.decode(errors="replace").strip(),
        compute=(major.value, minor.value),
        memory_mib=memory.value // (1024 * 1024),
    )


def _check(code: int, call: str) -> None:
    if code != 0:
        raise RuntimeError(f"{call} returned CUDA error {code}")


def _cuda_error(code: int) -> str:
    return _CUDA_ERRORS.get(code, f"the CUDA driver failed to start (cuInit returned error {code})")


def _driver_version(nvml: Any) -> str | None:
    if nvml is None:
        return None
    init = getattr(nvml, "nvmlInit_v2", None) or nvml.nvmlInit
    if init() != 0:
        return None
    try:
        text = ctypes.create_string_buffer(96)
        if nvml.nvmlSystemGetDriverVersion(text, len(text)) != 0:
            return None
        return text.value.decode(errors="replace").strip() or None
    finally:
        nvml.nvmlShutdown()


def memory_used_mib(index: int, *, load: Loader = load_library) -> float | None:
    """Memory in use on GPU ``index`` (every process), in MiB, from NVML; None where NVML cannot say.

    NVML counts devices in PCI order, not ``CUDA_VISIBLE_DEVICES`` order: with that variable
    set, ``index`` is NVML's. For benchmarks (peak GPU memory), not for decisions.
    """
    nvml = open_nvml(load)
    if nvml is None:
        return None
    try:
        return used_mib(nvml, index)
    finally:
        close_nvml(nvml)


def open_nvml(load: Loader = load_library) -> Any:
    """NVML, initialised (call :func:`close_nvml` when done); None where it cannot start."""
    try:
        nvml = load(_NVML_LIBRARIES)
        if nvml is None:
            return None
        init = getattr(nvml, "nvmlInit_v2", None) or nvml.nvmlInit
        return nvml if init() == 0 else None
    except Exception:
        return None


def close_nvml(nvml: Any) -> None:
    """Release an NVML from :func:`open_nvml`."""
    with contextlib.suppress(Exception):
        nvml.nvmlShutdown()


def used_mib(nvml: Any, index: int) -> float | None:
    """Memory in use on GPU ``index`` in MiB, through an open NVML; None where it cannot say."""
    try:
        handle = ctypes.c_void_p()
        if nvml.nvmlDeviceGetHandleByIndex_v2(index, ctypes.pointer(handle)) != 0:
            return None
        info = _NvmlMemory()
        if nvml.nvmlDeviceGetMemoryInfo(handle, ctypes.pointer(info)) != 0:
            return None
        return float(info.used) / (1024 * 1024)
    except Exception:
        return None


class _NvmlMemory(ctypes.Structure):
    """``nvmlMemory_t``: total, free and used bytes."""

    _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong), ("used", ctypes.c_ulonglong)]


def torch_cuda_build() -> str | None:
    """The CUDA version the installed PyTorch was built for (``12.4``), None for a CPU build or no PyTorch.

    Read from ``torch/version.py`` without importing PyTorch (the runtime never imports it).
    """
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    return cuda_of_build(Path(next(iter(spec.submodule_search_locations))) / "version.py")


def cuda_of_build(version_file: Path) -> str | None:
    """The ``cuda`` value a PyTorch ``version.py`` records (None for a CPU build or an unreadable file)."""
    try:
        text = version_file.read_text()
    except OSError:
        return None
    match = re.search(r"^cuda\s*(?::[^=\n]*)?=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
    return match[1] if match else None


def torch_cuda_problem(report: GpuReport | None = None) -> str | None:
    """Why PyTorch cannot run on a CUDA GPU here (the fix included), or None when it can."""
    if importlib.util.find_spec("torch") is None:
        return "PyTorch is not installed: pip install 'vsparagon[export]' (a CUDA build)"
    report = report or gpu_report()
    if not report.gpus:
        return str(report.problem)
    build = torch_cuda_build()
    if build is None:
        return (
            "the installed PyTorch is a CPU-only build; install a CUDA build (https://pytorch.org/get-started/locally/)"
        )
    if report.cuda and _major(build) > _major(report.cuda):
        # CUDA's minor-version compatibility covers a newer minor, never a newer major
        return (
            f"the installed PyTorch is built for CUDA {build}, and the NVIDIA driver supports CUDA {report.cuda} at "
            f"most; update the driver, or install a PyTorch built for CUDA {_major(report.cuda)}.x"
        )
    return None


def _major(version: str) -> int:
    try:
        return int(version.split(".")[0])
    except ValueError:
        return 0


def describe(report: GpuReport) -> dict[str, Any]:
    """``report`` as plain data for ``paragon info``."""
    return {
        "gpus": [gpu.describe() for gpu in report.gpus] or f"none: {report.problem}",
        "driver": report.driver or "unknown (NVML not found)",
        "cuda (driver)": report.cuda or "unknown",
        "torch cuda build": torch_cuda_build() or "none",
    }
