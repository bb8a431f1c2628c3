"""The CUDA driver API through :mod:`ctypes`: device memory, pinned host memory and streams for TensorRT.

``libcuda`` comes with the NVIDIA driver, so this needs no CUDA toolkit, no ``cuda-python``
and no PyTorch, and its ABI is the same for every CUDA version; :mod:`ctypes` releases the
GIL during each call. Sessions use the device's primary context, the one TensorRT's CUDA
runtime uses, made current on each calling thread.

UNEXECUTED on a real GPU: no GPU was available while this was written. The tests run this
code against a fake ``libcuda`` (``tests/runtime/trt_fakes.py``).
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

import numpy as np

from vsparagon.runtime import gpu_info
from vsparagon.runtime.backends.base import BackendError

#: Where the driver library lives.
LIBRARIES = ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so")
#: ``CU_STREAM_NON_BLOCKING``: no implicit synchronisation with the legacy default stream.
_STREAM_NON_BLOCKING = 1
#: ``CUDA_ERROR_OUT_OF_MEMORY``.
_OUT_OF_MEMORY = 2

#: Loads the driver library (tests replace it with a fake).
load_library: gpu_info.Loader = gpu_info.load_library


class Device:
    """One CUDA device's primary context: allocations, copies and streams on it."""

    def __init__(self, index: int) -> None:
        lib = load_library(LIBRARIES)
        if lib is None:
            raise BackendError(f"{gpu_info.NO_DRIVER}; use backend='ort-cpu' or 'openvino' on this machine")
        self._lib = lib
        self._check(lib.cuInit(0), "cuInit")
        count = ctypes.c_int(0)
        self._check(lib.cuDeviceGetCount(ctypes.pointer(count)), "cuDeviceGetCount")
        if not 0 <= index < count.value:
            raise BackendError(_no_such_device(index, count.value))
        self.index = index
        handle = ctypes.c_int(0)
        self._check(lib.cuDeviceGet(ctypes.pointer(handle), ctypes.c_int(index)), "cuDeviceGet")
        self._context = ctypes.c_void_p(0)
        self._check(lib.cuDevicePrimaryCtxRetain(ctypes.pointer(self._context), handle), "cuDevicePrimaryCtxRetain")
        self._keep: list[Any] = []  # pinned host buffers live as long as the device object

    def activate(self) -> None:
        """Make this device's primary context current on the calling thread (TensorRT then runs on it)."""
        self._check(self._lib.cuCtxSetCurrent(self._context), "cuCtxSetCurrent")

    def memory(self) -> tuple[int, int]:
        """(free, total) bytes of device memory."""
        self.activate()
        free, total = ctypes.c_size_t(0), ctypes.c_size_t(0)
        self._check(self._lib.cuMemGetInfo_v2(ctypes.pointer(free), ctypes.pointer(total)), "cuMemGetInfo")
        return free.value, total.value

    def stream(self) -> int:
        """A new non-blocking stream's handle."""
        self.activate()
        stream = ctypes.c_void_p(0)
        self._check(
            self._lib.cuStreamCreate(ctypes.pointer(stream), ctypes.c_uint(_STREAM_NON_BLOCKING)), "cuStreamCreate"
        )
        return int(stream.value or 0)

    def alloc(self, nbytes: int) -> int:
        """``nbytes`` of device memory (kept for the life of the process, like the sessions that use it)."""
        self.activate()
        pointer = ctypes.c_uint64(0)
        self._check(self._lib.cuMemAlloc_v2(ctypes.pointer(pointer), ctypes.c_size_t(max(1, nbytes))), "cuMemAlloc")
        return int(pointer.value)

    def pinned(self, count: int, dtype: np.dtype[Any]) -> np.ndarray:
        """A flat array of ``count`` values in page-locked host memory (copies from it run asynchronously)."""
        self.activate()
        nbytes = max(1, count * dtype.itemsize)
        pointer = ctypes.c_void_p(0)
        self._check(self._lib.cuMemAllocHost_v2(ctypes.pointer(pointer), ctypes.c_size_t(nbytes)), "cuMemAllocHost")
        raw = (ctypes.c_uint8 * nbytes).from_address(int(pointer.value or 0))
        self._keep.append(raw)
        return np.frombuffer(raw, dtype=dtype, count=count)

    def upload(self, device: int, host: np.ndarray, stream: int) -> None:
        """Queue a copy of ``host`` (pinned, contiguous) to ``device`` on ``stream``."""
        self._check(
            self._lib.cuMemcpyHtoDAsync_v2(
                ctypes.c_uint64(device), ctypes.c_void_p(host.ctypes.data), ctypes.c_size_t(host.nbytes),
                ctypes.c_void_p(stream),
            ),
            "cuMemcpyHtoDAsync",
        )  # fmt: skip

    def download(self, host: np.ndarray, device: int, stream: int) -> None:
        """Queue a copy of ``device`` into ``host`` (pinned, contiguous) on ``stream``."""
        self._check(
            self._lib.cuMemcpyDtoHAsync_v2(
                ctypes.c_void_p(host.ctypes.data), ctypes.c_uint64(device), ctypes.c_size_t(host.nbytes),
                ctypes.c_void_p(stream),
            ),
            "cuMemcpyDtoHAsync",
        )  # fmt: skip

    def synchronize(self, stream: int) -> None:
        """Wait for everything queued on ``stream`` (the GIL is released meanwhile)."""
        self._check(self._lib.cuStreamSynchronize(ctypes.c_void_p(stream)), "cuStreamSynchronize")

    def _check(self, code: int, call: str) -> None:
        if code == 0:
            return
        name = ctypes.c_char_p()
        known = self._lib.cuGetErrorName(ctypes.c_int(code), ctypes.pointer(name)) == 0 and name.value
        label = name.value.decode(errors="replace") if known and name.value else f"error {code}"
        if code == _OUT_OF_MEMORY:
            raise BackendError(
                f"GPU {getattr(self, 'index', '?')} is out of memory ({call}: {label}); use a smaller tile=, fewer "
                "num_streams, or close other programs on the GPU"
            )
        raise BackendError(f"CUDA failed on GPU {getattr(self, 'index', '?')}: {call} returned {label}")


def _no_such_device(index: int, count: int) -> str:
    if count == 0:
        return (
            f"device={index} does not exist: the driver sees 0 CUDA GPUs (check CUDA_VISIBLE_DEVICES); "
            "use backend='ort-cpu' or 'openvino' on this machine"
        )
    valid = "device=0" if count == 1 else f"device=0 to {count - 1}"
    return f"device={index} does not exist: the driver sees {count} CUDA GPU{'s' if count > 1 else ''}; pass {valid}"
