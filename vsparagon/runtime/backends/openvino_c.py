"""OpenVINO through its C API, for a process where another OpenVINO build got in first.

vs-mlrt's ``vapoursynth-mlrt-ov`` ships its own OpenVINO, and VapourSynth loads it
when it creates a core. Both builds of one release share a soname
(``libopenvino.so.2641`` for 2026.4.1), so the dynamic linker hands whichever came
first to every later user of that name. When vs-mlrt's came first, the ``openvino``
Python module binds to it and then refuses to start, because the build number
differs from its own (same release and source commit, other packager). The C API
makes no such check: this module calls it with ctypes, on the build already in the
process, so ``backend="openvino"`` runs there with the same release and the same
CPU plugin. ctypes releases the GIL around every call.

Linux only (the loaded library is found in ``/proc/self/maps``), like the native shim.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import math
import os
import re
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vsparagon.runtime.backends.base import BackendError
from vsparagon.runtime.backends.openvino import CLASH_HINT, ov_reason, precision_name

_P = ctypes.c_void_p
_OUT = ctypes.POINTER(ctypes.c_void_p)


class _Version(ctypes.Structure):
    _fields_ = (("buildNumber", ctypes.c_char_p), ("description", ctypes.c_char_p))  # ov_version_t


class _Shape(ctypes.Structure):
    _fields_ = (("rank", ctypes.c_int64), ("dims", ctypes.POINTER(ctypes.c_int64)))  # ov_shape_t


class _Dimension(ctypes.Structure):
    _fields_ = (("min", ctypes.c_int64), ("max", ctypes.c_int64))  # ov_dimension_t (and ov_rank_t)


class _PartialShape(ctypes.Structure):
    _fields_ = (("rank", _Dimension), ("dims", ctypes.POINTER(_Dimension)))  # ov_partial_shape_t


_SIGNATURES: dict[str, tuple[Any, list[Any] | None]] = {
    # name: (return type, argument types); ov_status_e is an int, 0 for success
    "ov_get_openvino_version": (ctypes.c_int, [ctypes.POINTER(_Version)]),
    "ov_version_free": (None, [ctypes.POINTER(_Version)]),
    "ov_get_error_info": (ctypes.c_char_p, [ctypes.c_int]),
    "ov_get_last_err_msg": (_P, []),
    "ov_free": (None, [_P]),
    "ov_core_create": (ctypes.c_int, [_OUT]),
    "ov_core_read_model": (ctypes.c_int, [_P, ctypes.c_char_p, ctypes.c_char_p, _OUT]),
    "ov_model_free": (None, [_P]),
    "ov_model_reshape_single_input": (ctypes.c_int, [_P, _PartialShape]),
    # variadic: (core, model, device, count, out, key, value, ...), every key and value a char*
    "ov_core_compile_model": (ctypes.c_int, None),
    "ov_compiled_model_free": (None, [_P]),
    "ov_compiled_model_get_property": (ctypes.c_int, [_P, ctypes.c_char_p, _OUT]),
    "ov_compiled_model_create_infer_request": (ctypes.c_int, [_P, _OUT]),
    "ov_infer_request_free": (None, [_P]),
    "ov_infer_request_set_input_tensor": (ctypes.c_int, [_P, _P]),
    "ov_infer_request_infer": (ctypes.c_int, [_P]),
    "ov_infer_request_get_output_tensor_by_index": (ctypes.c_int, [_P, ctypes.c_size_t, _OUT]),
    "ov_tensor_create_from_host_ptr": (ctypes.c_int, [ctypes.c_int, _Shape, _P, _OUT]),
    "ov_tensor_get_shape": (ctypes.c_int, [_P, ctypes.POINTER(_Shape)]),
    "ov_shape_free": (ctypes.c_int, [ctypes.POINTER(_Shape)]),
    "ov_tensor_get_element_type": (ctypes.c_int, [_P, ctypes.POINTER(ctypes.c_int)]),
    "ov_tensor_data": (ctypes.c_int, [_P, _OUT]),
    "ov_tensor_free": (None, [_P]),
}


def element_types(version: str) -> dict[np.dtype[Any], int]:
    """numpy dtype -> ``ov_element_type_e`` (F16, F32) of the C API whose build number is ``version``.

    OpenVINO 2026.0 dropped ``UNDEFINED`` (0) from the enum, so every later code moved down by one.
    """
    found = re.match(r"(\d+)\.", version)
    if found is None:
        raise BackendError(
            f"OpenVINO reports build {version!r}; without its release year its element types are unknown"
        )
    shift = 1 if int(found.group(1)) < 2026 else 0
    return {np.dtype(np.float16): 3 + shift, np.dtype(np.float32): 4 + shift}


class CApi:
    """OpenVINO's C library, its functions typed, and the build it runs on."""

    def __init__(self, path: Path) -> None:
        """Load the C library at ``path``.

        Raises:
            OSError: it cannot be loaded.
            AttributeError: it lacks a function this module calls.
        """
        self.path = path
        self.lib = ctypes.CDLL(str(path))
        for name, (restype, argtypes) in _SIGNATURES.items():
            function = getattr(self.lib, name)
            function.restype = restype
            if argtypes is not None:
                function.argtypes = argtypes
        version = _Version()
        self.check(self.lib.ov_get_openvino_version(ctypes.byref(version)), "report its version")
        self.version = (version.buildNumber or b"").decode(errors="replace")
        """The build number of the runtime it calls into, e.g. ``2026.4.1-1-e213a147257``."""
        self.lib.ov_version_free(ctypes.byref(version))
        self.element_types = element_types(self.version)
        """numpy dtype -> this build's element type code."""
        self.dtypes = {code: dtype for dtype, code in self.element_types.items()}
        self._core: ctypes.c_void_p | None = None
        self._core_lock = threading.Lock()

    @property
    def core(self) -> ctypes.c_void_p:
        """The one ``ov_core_t`` of this library, created on first use and never freed.

        Never freed for the reason given in :func:`.openvino.shared_core`: each core's CPU
        plugin reinstates, when destroyed, a signal stack that may already be freed.
        """
        with self._core_lock:
            if self._core is None:
                core = ctypes.c_void_p()
                self.check(self.lib.ov_core_create(ctypes.byref(core)), "start")
                self._core = core
            return self._core

    def check(self, status: int, doing: str) -> None:
        """Raise :class:`BackendError` with OpenVINO's own message unless ``status`` is OK.

        The status's text is this call's; the last-error text is process-wide (another thread's
        failure may have replaced it), so it is only a hint.
        """
        if status == 0:
            return
        info = self.lib.ov_get_error_info(status)  # a static string: never freed
        reason = info.decode(errors="replace") if info else f"status {status}"
        pointer = self.lib.ov_get_last_err_msg()
        last = ctypes.string_at(pointer).decode(errors="replace") if pointer else ""
        if pointer:
            self.lib.ov_free(pointer)
        hint = f" (OpenVINO's last error in this process: {ov_reason(last)})" if last.strip() else ""
        raise BackendError(f"OpenVINO could not {doing}: {reason}{hint}")


class CRuntime:
    """The :class:`~vsparagon.runtime.backends.openvino.OpenVinoRuntime` of a model read through the C API."""

    def __init__(self, api: CApi, path: Path, config: dict[str, str]) -> None:
        self._api = api
        self._properties = [ctypes.c_char_p(text.encode()) for item in config.items() for text in item]
        self._handles: list[tuple[Callable[[Any], None], ctypes.c_void_p]] = []  # to free, newest last
        finalizer = weakref.finalize(self, _free, self._handles)
        finalizer.atexit = False  # at exit the process drops everything anyway, in an order OpenVINO may not like
        self._core = api.core
        self._model = self._new(
            lambda out: api.lib.ov_core_read_model(self._core, os.fsencode(path), None, out),
            api.lib.ov_model_free,
            f"read {path.name}",
        )

    def _new(self, create: Callable[[Any], int], free: Callable[[Any], None], doing: str) -> ctypes.c_void_p:
        handle = ctypes.c_void_p()
        self._api.check(create(ctypes.byref(handle)), doing)
        self._handles.append((free, handle))
        return handle

    def compile(self, shape: tuple[int, ...]) -> ctypes.c_void_p:
        """Reshape the model (callers serialise this) and compile it for the CPU."""
        lib = self._api.lib
        dims = (_Dimension * len(shape))(*(_Dimension(d, d) for d in shape))
        static = _PartialShape(_Dimension(len(shape), len(shape)), dims)
        self._api.check(lib.ov_model_reshape_single_input(self._model, static), f"reshape the model to {shape}")
        return self._new(
            lambda out: lib.ov_core_compile_model(
                self._core, self._model, b"CPU", ctypes.c_size_t(len(self._properties)), out, *self._properties
            ),
            lib.ov_compiled_model_free,
            f"compile the model for {shape}",
        )

    def request(self, compiled: ctypes.c_void_p) -> ctypes.c_void_p:
        lib = self._api.lib
        return self._new(
            lambda out: lib.ov_compiled_model_create_infer_request(compiled, out),
            lib.ov_infer_request_free,
            "create an infer request",
        )

    def precision(self, compiled: ctypes.c_void_p) -> str:
        lib = self._api.lib
        value = ctypes.c_void_p()
        status = lib.ov_compiled_model_get_property(compiled, b"INFERENCE_PRECISION_HINT", ctypes.byref(value))
        self._api.check(status, "report the compiled model's precision")
        try:
            return precision_name(ctypes.string_at(value).decode(errors="replace"))
        finally:
            lib.ov_free(value)

    def infer(self, request: ctypes.c_void_p, batch: np.ndarray) -> np.ndarray:
        """Run ``request`` on ``batch`` (C-contiguous float16 or float32; read in place, not copied)."""
        lib, check = self._api.lib, self._api.check
        dims = (ctypes.c_int64 * batch.ndim)(*batch.shape)
        tensor = ctypes.c_void_p()
        shape, element = _Shape(batch.ndim, dims), self._api.element_types[batch.dtype]
        status = lib.ov_tensor_create_from_host_ptr(element, shape, batch.ctypes.data, ctypes.byref(tensor))
        check(status, "wrap the input")
        try:
            check(lib.ov_infer_request_set_input_tensor(request, tensor), "set the input")
            check(lib.ov_infer_request_infer(request), "run the model")
        finally:
            lib.ov_tensor_free(tensor)
        output = ctypes.c_void_p()
        check(lib.ov_infer_request_get_output_tensor_by_index(request, 0, ctypes.byref(output)), "get the output")
        try:
            return self._copy(output)
        finally:
            lib.ov_tensor_free(output)

    def _copy(self, tensor: ctypes.c_void_p) -> np.ndarray:
        """The tensor's values as a new float32 array (the request reuses its output memory)."""
        lib, check = self._api.lib, self._api.check
        shape, element, data = _Shape(), ctypes.c_int(), ctypes.c_void_p()
        check(lib.ov_tensor_get_shape(tensor, ctypes.byref(shape)), "read the output shape")
        dims = tuple(shape.dims[i] for i in range(shape.rank))
        lib.ov_shape_free(ctypes.byref(shape))
        check(lib.ov_tensor_get_element_type(tensor, ctypes.byref(element)), "read the output type")
        check(lib.ov_tensor_data(tensor, ctypes.byref(data)), "read the output")
        dtype = self._api.dtypes.get(element.value)
        if dtype is None:
            raise BackendError(f"the model's output has OpenVINO element type {element.value}; expected f16 or f32")
        values = (ctypes.c_char * (math.prod(dims) * dtype.itemsize)).from_address(data.value or 0)
        return np.frombuffer(values, dtype=dtype).reshape(dims).astype(np.float32)


def _free(handles: list[tuple[Callable[[Any], None], ctypes.c_void_p]]) -> None:
    # newest first: requests before their compiled models, compiled models before the model
    while handles:
        free, handle = handles.pop()
        free(handle)


_RUNTIME_NAME = re.compile(r"libopenvino\.so\.\d+")


def loaded_runtime() -> Path | None:
    """The OpenVINO runtime library mapped into this process, if any."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and _RUNTIME_NAME.fullmatch(Path(fields[5]).name):
            return Path(fields[5])
    return None


def _c_api_candidates(runtime: Path) -> list[Path]:
    """The C library beside ``runtime`` (its own build), then the ``openvino`` package's.

    Either binds to the loaded runtime: a library that needs ``libopenvino.so.N`` gets the one in memory.
    """
    name = runtime.name.replace("libopenvino", "libopenvino_c", 1)
    candidates = [runtime.with_name(name)]
    spec = importlib.util.find_spec("openvino")  # finds the package without running it
    if spec is not None:
        candidates += [Path(folder, "libs", name) for folder in spec.submodule_search_locations or []]
    return [path for path in candidates if path.is_file()]


@functools.cache
def loaded_c_api() -> CApi:
    """OpenVINO's C API on the runtime already in this process (loaded once).

    Raises:
        BackendError: no runtime is loaded, or no C library for it loads; the message says what to do.
    """
    runtime = loaded_runtime()
    if runtime is None:
        raise BackendError(f"the openvino Python module refuses the OpenVINO build in this process; {CLASH_HINT}")
    problem = f"another OpenVINO build ({runtime.parent}) is loaded in this process (vs-mlrt's plugin bundles its own)"
    reasons = []
    for path in _c_api_candidates(runtime):
        try:
            return CApi(path)
        except (OSError, AttributeError, BackendError) as exc:
            reasons.append(f"{path.name}: {exc}")
    why = "; ".join(reasons) or f"no libopenvino_c beside {runtime.name} or in the openvino package"
    raise BackendError(
        f"{problem}, the openvino Python module refuses to run on it, and its C API did not load ({why}); {CLASH_HINT}"
    )
