"""ONNX Runtime on an NVIDIA GPU: the CUDA execution provider (``ort-cuda``) and TensorRT's (``ort-trt``).

A session is ``streams`` ONNX Runtime sessions (an :class:`~.gpu_common.InstancePool`), each
running on the CUDA stream ONNX Runtime makes for it, with its own I/O binding and device
buffers made once per input shape, so frames in flight never share a stream or a buffer.
Copies in and out are ONNX Runtime's own (``OrtValue.update_inplace``, ``OrtValue.numpy``), which
wait for them; its Python API allocates no pinned host memory. Needs ``onnxruntime-gpu``, which
replaces ``onnxruntime`` (see :mod:`.ort_gpu_setup`).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vsparagon.runtime import gpu_info
from vsparagon.runtime.backends import ort_gpu_setup as setup
from vsparagon.runtime.backends.base import BackendError, Session, onnx_file, stream_threads
from vsparagon.runtime.backends.gpu_common import GpuBackend, InstancePool, half_problem, probe_fits, say_half_fallback
from vsparagon.runtime.source import ModelSource, ort_reason

#: Share of the GPU's memory the frames in flight may plan their tiles for (the rest: runtime, workspace, engines).
GPU_BUDGET_SHARE = 0.5
#: Input shapes one instance keeps device buffers for (whole frames, and edge tiles of another size).
MAX_SHAPES = 8


class OrtGpuInstance:
    """One ``InferenceSession``: its CUDA stream, I/O binding, and an input and output buffer per shape."""

    def __init__(self, ort: Any, session: Any, *, device: int, scale: int) -> None:
        self._ort = ort
        self.session = session
        """The ONNX Runtime session (for tests and diagnostics)."""
        self._device, self._scale = device, scale
        self._binding = session.io_binding()
        self._input = session.get_inputs()[0].name
        output = session.get_outputs()[0]
        self._output = output.name
        self._out_dtype = np.float16 if output.type == "tensor(float16)" else np.float32
        self._buffers: dict[tuple[int, ...], tuple[Any, Any]] = {}

    def knows(self, shape: tuple[int, ...]) -> bool:
        """Whether this instance has run ``shape`` before (its buffers exist; TensorRT has its engine)."""
        return shape in self._buffers

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, h, w) in the graph's input type -> (N, C, h*scale, w*scale) float32."""
        source, target = self._buffers_for(batch)
        source.update_inplace(batch)  # host -> device
        self._binding.bind_ortvalue_input(self._input, source)
        self._binding.bind_ortvalue_output(self._output, target)
        self.session.run_with_iobinding(self._binding)
        out = target.numpy()  # device -> host: a new array
        if target.device_name() == "cpu":  # a view of the buffer, which the next run overwrites
            return np.array(out, np.float32)
        return np.asarray(out, np.float32)

    def _buffers_for(self, batch: np.ndarray) -> tuple[Any, Any]:
        shape = tuple(batch.shape)
        pair = self._buffers.get(shape)
        if pair is None:
            if len(self._buffers) >= MAX_SHAPES:
                self._buffers.clear()
            n, c, h, w = shape
            make = self._ort.OrtValue.ortvalue_from_shape_and_type
            pair = (
                make(list(shape), batch.dtype, "cuda", self._device),
                make([n, c, h * self._scale, w * self._scale], self._out_dtype, "cuda", self._device),
            )
            self._buffers[shape] = pair
        return pair


class OrtGpuSession(Session):
    """``streams`` instances; a call borrows one. The first run of a shape on any instance runs alone,
    so TensorRT builds each engine once and the other instances load it from the engine cache."""

    def __init__(self, pool: InstancePool[OrtGpuInstance], *, scale: int, fp16: bool, budget_bytes: int) -> None:
        super().__init__(scale=scale, input_dtype=np.float16 if fp16 else np.float32, max_parallel=len(pool.instances))
        self.pool = pool
        """The instances (one per frame in flight)."""
        self.budget_bytes = budget_bytes
        self._first_runs = threading.Lock()

    def _run(self, batch: np.ndarray) -> np.ndarray:
        with self.pool.lend() as instance:
            if instance.knows(tuple(batch.shape)):
                return _checked(instance, batch)
            with self._first_runs:
                return _checked(instance, batch)


def _checked(instance: OrtGpuInstance, batch: np.ndarray) -> np.ndarray:
    try:
        return instance.run(batch)
    except Exception as exc:
        reason = ort_reason(exc)
        hint = ""
        if any(word in reason.lower() for word in ("out of memory", "failed to allocate", "cudaerrormemoryallocation")):
            hint = "; the GPU is out of memory: pass a smaller tile= (e.g. tile=512), or close other GPU programs"
        raise BackendError(f"ONNX Runtime failed on a batch of shape {tuple(batch.shape)}: {reason}{hint}") from None


@dataclass(frozen=True, kw_only=True)
class _OrtGpu(GpuBackend):
    """What both providers share: the pool, device checks, the fp16 check and the CPU-fallback refusal."""

    primary: ClassVar[str] = setup.CUDA_EP
    """The execution provider that must run the graph (ONNX Runtime would otherwise fall back to the CPU)."""

    @classmethod
    def unavailable(cls) -> str | None:
        """onnxruntime-gpu missing (or the CPU build instead), or no CUDA device."""
        return setup.ort_problem(cls.name)

    def providers(self, ort: Any, onnx: Path, *, fp16: bool, gpu: gpu_info.Gpu) -> list[tuple[str, dict[str, Any]]]:
        """The execution providers, most preferred first, with their options."""
        return [(setup.CUDA_EP, cuda_options(self.device))]

    def open(self, source: ModelSource) -> Session:
        ort = setup.import_gpu_ort(self.name)
        gpu = setup.device_gpu(self.device, self.name)
        path, fp16 = onnx_file(source, fp16=self.fp16)
        scale = source.descriptor.scale
        pool = self._pool(ort, path, fp16=fp16, gpu=gpu, scale=scale)
        if fp16 and source.precision == "fp32" and probe_fits(source.descriptor):
            reason = self._half_problem(ort, pool.instances[0], source, gpu)
            if reason is not None:
                say_half_fallback(self.name, source.path.name, reason)
                del pool  # its sessions and buffers leave the GPU before the fp32 ones arrive
                path, fp16 = onnx_file(source, fp16=False)
                pool = self._pool(ort, path, fp16=False, gpu=gpu, scale=scale)
        budget = int(gpu.memory_mib * 2**20 * GPU_BUDGET_SHARE)
        return OrtGpuSession(pool, scale=scale, fp16=fp16, budget_bytes=budget)

    def _pool(self, ort: Any, onnx: Path, *, fp16: bool, gpu: gpu_info.Gpu, scale: int) -> InstancePool[OrtGpuInstance]:
        """One instance per stream, each its own session (and so its own CUDA stream) on ``providers``."""
        providers = self.providers(ort, onnx, fp16=fp16, gpu=gpu)
        streams = max(1, self.streams)

        def make(_: int) -> OrtGpuInstance:
            options = session_options(ort, self.threads, streams)
            session = self._session(ort, onnx, options, providers, self.primary, gpu)
            return OrtGpuInstance(ort, session, device=self.device, scale=scale)

        return InstancePool(make, streams)

    def _half_problem(self, ort: Any, half: OrtGpuInstance, source: ModelSource, gpu: gpu_info.Gpu) -> str | None:
        """The test pattern through ``half`` and through an fp32 instance on the CUDA provider (no engine to build)."""
        full_path, _ = onnx_file(source, fp16=False)
        options = session_options(ort, self.threads, max(1, self.streams))
        providers = [(setup.CUDA_EP, cuda_options(self.device))]
        reference = self._session(ort, full_path, options, providers, setup.CUDA_EP, gpu)
        full = OrtGpuInstance(ort, reference, device=self.device, scale=source.descriptor.scale)
        return half_problem(lambda x: half.run(x.astype(np.float16)), full.run, source.descriptor.in_channels)

    def _session(
        self,
        ort: Any,
        onnx: Path,
        options: Any,
        providers: list[tuple[str, dict[str, Any]]],
        primary: str,
        gpu: gpu_info.Gpu,
    ) -> Any:
        try:
            # enable_fallback=0: ONNX Runtime would otherwise retry on other providers; its Python layer prints
            # that retry with print(), so stdout (vspipe's video) is redirected too, for versions that ignore the flag
            with contextlib.redirect_stdout(sys.stderr):
                session = ort.InferenceSession(str(onnx), options, providers=providers, enable_fallback=0)
        except Exception as exc:
            raise BackendError(
                f"ONNX Runtime could not open {onnx.name} on GPU {self.device} ({gpu.name}) with backend="
                f"{self.name!r}: {ort_reason(exc)}"
            ) from None
        if primary not in session.get_providers():
            raise BackendError(self._fell_back(primary))
        return session

    def _fell_back(self, primary: str) -> str:
        said = setup.preload_cuda()
        detail = f" (loading CUDA said: {said[:300]})" if said else ""
        return (
            f"ONNX Runtime's CUDA provider did not start, so backend={self.name!r} would run on the CPU, slowly; "
            f"usually CUDA 12 or cuDNN 9 is missing{detail}: pip install 'onnxruntime-gpu[cuda,cudnn]' "
            "(or install them system-wide), or use backend='ort-cpu' to run on the CPU on purpose"
        )


def cuda_options(device: int) -> dict[str, Any]:
    """The CUDA provider's options: the device, exhaustive cuDNN convolution search, no power-of-two arena."""
    return {
        "device_id": device,
        "cudnn_conv_algo_search": "EXHAUSTIVE",  # timed once per shape, then cached by cuDNN for the session
        "cudnn_conv_use_max_workspace": 1,
        "arena_extend_strategy": "kSameAsRequested",  # frames have fixed shapes: no doubling of a 4K buffer
    }


def session_options(ort: Any, threads: int, streams: int) -> Any:
    """Every graph optimisation; CPU threads (for nodes no GPU provider takes) shared by the streams."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = stream_threads(threads, streams)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors reach the caller as exceptions; the providers' warnings stay quiet
    return options


@dataclass(frozen=True, kw_only=True)
class OrtCuda(_OrtGpu):
    """ONNX Runtime with the CUDA execution provider; fp16 by default for fp16-safe models."""

    name = "ort-cuda"


@dataclass(frozen=True, kw_only=True)
class OrtTensorRT(_OrtGpu):
    """ONNX Runtime with the TensorRT execution provider first (the CUDA provider for nodes it does not take).

    Engines and the timing cache live under ``cache_dir()/engines/ort-trt``, one folder per model
    file, precision, GPU and runtime version (:func:`.ort_gpu_setup.engine_folders`).
    """

    name = "ort-trt"
    primary: ClassVar[str] = setup.TRT_EP

    @classmethod
    def unavailable(cls) -> str | None:
        """Those of ``ort-cuda``, or no TensorRT provider in this build, or TensorRT's libraries missing."""
        problem = setup.ort_problem(cls.name)
        if problem is not None:
            return problem
        import onnxruntime as ort

        return setup.trt_provider_problem(ort)

    def providers(self, ort: Any, onnx: Path, *, fp16: bool, gpu: gpu_info.Gpu) -> list[tuple[str, dict[str, Any]]]:
        problem = setup.trt_provider_problem(ort)
        if problem is not None:
            raise BackendError(problem)
        engines, timing = setup.engine_folders(onnx, fp16=fp16, gpu=gpu, ort_version=str(ort.__version__))
        trt = {
            "device_id": self.device,
            "trt_fp16_enable": fp16,
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(engines),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(timing),
        }
        return [(setup.TRT_EP, trt), (setup.CUDA_EP, cuda_options(self.device))]

    def _fell_back(self, primary: str) -> str:
        if primary == setup.TRT_EP:
            return (
                "ONNX Runtime's TensorRT provider did not start (TensorRT's libraries are missing or not the "
                f"version this onnxruntime-gpu was built for, TensorRT {' or '.join(setup.TRT_MAJORS)}.x): "
                "pip install tensorrt, or use backend='ort-cuda'"
            )
        return super()._fell_back(primary)
