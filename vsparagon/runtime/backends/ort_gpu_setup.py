"""What ONNX Runtime on a GPU needs before a session opens: the GPU build, a CUDA device, TensorRT's
libraries, and a folder for the TensorRT provider's engines.

Every check here is cheap (for ``unavailable()`` and ``paragon info``) and says what to install.
ONNX Runtime is imported lazily; nothing here prints to stdout (vspipe writes video there).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.metadata
import importlib.util
import io
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vsparagon._files import atomic_write
from vsparagon.errors import MissingDependencyError
from vsparagon.runtime import engine_cache, gpu_info
from vsparagon.runtime.backends.base import BackendError

CUDA_EP = "CUDAExecutionProvider"
TRT_EP = "TensorrtExecutionProvider"
#: TensorRT major versions whose libraries ONNX Runtime's TensorRT provider links against (onnxruntime-gpu >= 1.18).
TRT_MAJORS = ("10",)
#: The provider's folder in the engine cache (``cache_dir()/engines/ort-trt``), listed and cleared by ``paragon cache``.
ORT_TRT = engine_cache.ORT_TRT_FOLDER
#: Version of the engine folder layout and its ``entry.json`` (a change makes new folders, never reuses old ones).
ENGINE_FORMAT = 1

_GPU_BUILD = (
    "pip uninstall onnxruntime && pip install onnxruntime-gpu (the GPU build replaces the CPU one "
    "and runs backend='ort-cpu' too)"
)


def ort_problem(backend: str) -> str | None:
    """Why ``backend`` cannot use ONNX Runtime's CUDA provider here (the fix included), or None.

    Cheap: a module lookup, the provider list of the installed build and the driver's GPU list.
    """
    if importlib.util.find_spec("onnxruntime") is None:
        return f"backend={backend!r} needs onnxruntime-gpu: pip install onnxruntime-gpu"
    try:
        import onnxruntime as ort
    except Exception as exc:  # a broken install must not break backend='auto', which may pick another runtime
        return f"backend={backend!r}: onnxruntime does not import ({exc}); reinstall onnxruntime-gpu"

    if not has_cuda_provider(ort):
        if _distribution("onnxruntime-gpu") and _distribution("onnxruntime"):
            return (
                f"backend={backend!r} needs onnxruntime-gpu, which is installed beside the CPU-only onnxruntime, "
                "and the CPU build's files won (both install the module onnxruntime): "
                "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"
            )
        return (
            f"backend={backend!r} needs onnxruntime-gpu, but the installed onnxruntime "
            f"{getattr(ort, '__version__', '?')} is the CPU-only build: {_GPU_BUILD}"
        )
    report = gpu_info.gpu_report()
    if not report.gpus:
        return f"backend={backend!r} needs an NVIDIA GPU: {report.problem}"
    return None


def has_cuda_provider(ort: Any) -> bool:
    """Whether this onnxruntime has the CUDA provider: built in, or registered as a plugin (newer builds
    register a bundled one, which ``get_available_providers`` does not list but ``get_ep_devices`` does)."""
    if CUDA_EP in ort.get_available_providers():
        return True
    try:
        return any(device.ep_name == CUDA_EP for device in ort.get_ep_devices())
    except Exception:  # older builds have no get_ep_devices
        return False


def _distribution(name: str) -> bool:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def import_gpu_ort(backend: str) -> Any:
    """``onnxruntime`` with its CUDA provider, CUDA and cuDNN preloaded where pip installed them.

    Raises:
        MissingDependencyError: onnxruntime is missing, or is the CPU-only build.
    """
    if importlib.util.find_spec("onnxruntime") is None:
        raise MissingDependencyError(f"backend={backend!r} needs onnxruntime-gpu: pip install onnxruntime-gpu")
    import onnxruntime as ort

    if not has_cuda_provider(ort):
        raise MissingDependencyError(str(ort_problem(backend)))
    preload_cuda()
    return ort


@functools.cache
def preload_cuda() -> str:
    """Load CUDA and cuDNN from NVIDIA's pip packages (``onnxruntime-gpu[cuda,cudnn]``) once, if this build can.

    Returns what ONNX Runtime said while trying (it prints to stdout, so that is captured), for error messages.
    """
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return ""
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        try:
            preload()
        except Exception as exc:  # libraries it cannot load are looked up again when the session opens
            said.write(f"{exc}\n")
    return " ".join(said.getvalue().split())


def device_gpu(device: int, backend: str) -> gpu_info.Gpu:
    """The GPU ``device=`` names.

    Raises:
        BackendError: there is no CUDA device, or none with that index (the ones there are named).
    """
    report = gpu_info.gpu_report()
    if not report.gpus:
        raise BackendError(f"backend={backend!r} needs an NVIDIA GPU: {report.problem}")
    gpu = report.device(device)
    if gpu is None:
        listed = ", ".join(f"{g.index}: {g.name}" for g in report.gpus)
        raise BackendError(
            f"device={device} does not exist: this process sees {len(report.gpus)} CUDA GPU(s) ({listed}); "
            f"pass device=0{f' to {len(report.gpus) - 1}' if len(report.gpus) > 1 else ''}"
        )
    return gpu


Loader = Callable[[str], Any]
"""Loads one shared library by name or path (:class:`ctypes.CDLL`); raises OSError when it cannot."""


def find_tensorrt(load: Loader, folders: list[Path]) -> str | None:
    """Load TensorRT's ``nvinfer`` (and its ONNX parser and plugins beside it) so that ONNX Runtime's
    TensorRT provider finds them; why it cannot, or None.

    Tried by name (the system's library path), then in each of ``folders`` (pip's ``tensorrt_libs``).
    """
    for folder in [None, *folders]:
        for major in TRT_MAJORS:
            names = _tensorrt_names(major)
            try:
                load(names[0] if folder is None else str(folder / names[0]))
            except OSError:
                continue
            for extra in names[1:]:  # the provider links these too; a missing one fails it, and it says so
                with contextlib.suppress(OSError):
                    load(extra if folder is None else str(folder / extra))
            return None
    wanted = _tensorrt_names(TRT_MAJORS[0])[0]
    return (
        f"ONNX Runtime's TensorRT provider needs TensorRT {' or '.join(TRT_MAJORS)}.x ({wanted} was not found): "
        "pip install tensorrt, or use backend='ort-cuda'"
    )


def _tensorrt_names(major: str) -> tuple[str, str, str]:
    if sys.platform == "win32":
        return f"nvinfer_{major}.dll", f"nvonnxparser_{major}.dll", f"nvinfer_plugin_{major}.dll"
    return f"libnvinfer.so.{major}", f"libnvonnxparser.so.{major}", f"libnvinfer_plugin.so.{major}"


@functools.cache
def tensorrt_problem() -> str | None:
    """:func:`find_tensorrt` on this machine, once per process."""
    folders = []
    spec = importlib.util.find_spec("tensorrt_libs")
    if spec is not None and spec.submodule_search_locations:
        folders = [Path(p) for p in spec.submodule_search_locations]
    return find_tensorrt(lambda name: ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL), folders)


def trt_provider_problem(ort: Any) -> str | None:
    """Why ONNX Runtime's TensorRT provider cannot run here (the fix included), or None."""
    if TRT_EP not in ort.get_available_providers():
        return (
            f"this onnxruntime-gpu build ({getattr(ort, '__version__', '?')}) has no TensorRT provider; "
            "use backend='ort-cuda', or backend='trt' (TensorRT itself)"
        )
    return tensorrt_problem()


def engine_folders(onnx: Path, *, fp16: bool, gpu: gpu_info.Gpu, ort_version: str) -> tuple[Path, Path]:
    """Where the TensorRT provider keeps the engines of ``onnx`` and its timing cache: ``(engines, timing)``.

    One folder per (ONNX bytes, precision, GPU and compute capability, ONNX Runtime version,
    :data:`ENGINE_FORMAT`), so a changed model, GPU or runtime never reuses an engine; its
    ``entry.json`` records that identity for ``paragon cache``. One timing cache per GPU.
    Under ``cache_dir()/engines/ort-trt``, or a temporary folder when that cannot be written
    (:func:`~vsparagon.runtime.engine_cache.usable_folder` says so on stderr, once).
    """
    digest = engine_cache.sha256_file(onnx)
    gpu_tag = f"{_slug(gpu.name)}-sm{gpu.compute[0]}{gpu.compute[1]}"
    precision = "fp16" if fp16 else "fp32"
    name = f"{_slug(onnx.stem)[:48]}-{digest[:16]}-{precision}-{gpu_tag}-ort{ort_version}-v{ENGINE_FORMAT}"
    root = engine_cache.usable_folder(engine_cache.usable_folder(engine_cache.engines_folder()) / ORT_TRT)
    engines, timing = root / name, root / f"timing-{gpu_tag}"
    for folder in (engines, timing):
        folder.mkdir(parents=True, exist_ok=True)
    entry = engines / "entry.json"
    if not entry.exists():
        record = {
            "format": ENGINE_FORMAT,
            "backend": "ort-trt",
            "onnx": str(onnx),
            "onnx_sha256": digest,
            "precision": precision,
            "gpu": gpu.name,
            "compute": f"{gpu.compute[0]}.{gpu.compute[1]}",
            "onnxruntime": ort_version,
        }
        with contextlib.suppress(OSError):  # the record is for listing; the engines work without it
            atomic_write(entry, lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
    return engines, timing


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "_", text).strip("_") or "x"
