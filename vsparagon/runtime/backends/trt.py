"""Native TensorRT: engines built in-process from the ONNX graph, cached on disk, run on per-stream instances.

An engine is built (or loaded from :mod:`vsparagon.runtime.engine_cache`) the first time an
input shape is run: the plugin runs one fixed frame or tile shape, so that is one engine per
clip. Each engine has ``streams`` instances (an execution context, a CUDA stream, device
buffers and pinned host buffers, made once), so copies of one frame overlap the compute of
another. Device memory, pinned memory and streams come from the CUDA driver through
:mod:`ctypes` (:mod:`.cuda_driver`); no PyTorch and no ``cuda-python``.

UNEXECUTED with a real TensorRT and GPU: no GPU was available while this was written. The
tests run every line here against a fake ``tensorrt`` module and a fake ``libcuda`` whose
"engine" computes with ONNX Runtime on the CPU (``tests/runtime/trt_fakes.py``).
"""

from __future__ import annotations

import importlib.util
import math
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from vsparagon.catalogue import ModelDescriptor
from vsparagon.errors import ConfigError, MissingDependencyError
from vsparagon.runtime import gpu_info
from vsparagon.runtime.backends.base import BackendError, Session, onnx_file
from vsparagon.runtime.backends.cuda_driver import Device
from vsparagon.runtime.backends.gpu_common import GpuBackend, InstancePool, half_problem, probe_fits, say_half_fallback
from vsparagon.runtime.backends.trt_build import BuildSettings, build_engine, make_logger
from vsparagon.runtime.engine_cache import CorruptEngine, EngineCache, EngineIdentity, sha256_file
from vsparagon.runtime.source import ModelSource

#: How to install what this backend needs (the ``trt`` extra: TensorRT's wheels for CUDA 12).
INSTALL = "pip install 'vsparagon[trt]' (or pip install tensorrt-cu12)"
#: Share of the free device memory the tiling policy may plan for when ``tile=0``.
GPU_BUDGET_SHARE = 0.6
#: Side of the square test pattern run in fp16 and fp32 when an fp16 session opens.
PROBE_SIZE = 64

Shape = tuple[int, ...]
HeightWidth = tuple[int, int]


@dataclass(frozen=True, kw_only=True)
class TensorRT(GpuBackend):
    """NVIDIA TensorRT through its Python API; ``streams`` instances per engine (frames in flight)."""

    name = "trt"

    workspace_mib: int = 0
    """Builder workspace limit in MiB; 0 leaves TensorRT's default (the device's memory)."""
    opt_level: int = 3
    """Builder optimisation level, 0 (fastest build) to 5 (most tactics tried); TensorRT's default is 3."""
    profile: tuple[HeightWidth, HeightWidth, HeightWidth] | None = None
    """(min, opt, max) input (height, width) of one engine that runs every size between them; None (the
    default): one static engine per input shape, the fastest."""

    def __post_init__(self) -> None:
        if self.workspace_mib < 0:
            raise ConfigError(f"workspace_mib must be >= 0 (0: TensorRT's default), got {self.workspace_mib}")
        if not 0 <= self.opt_level <= 5:
            raise ConfigError(f"opt_level must be 0 to 5 (TensorRT's builder optimisation level), got {self.opt_level}")
        if self.profile is not None:
            shapes = [tuple(hw) for hw in self.profile]
            if (
                len(shapes) != 3
                or any(len(hw) != 2 for hw in shapes)
                or not all(0 < a <= b <= c for a, b, c in zip(*shapes, strict=True))
            ):
                raise ConfigError(
                    f"profile must be ((min_h, min_w), (opt_h, opt_w), (max_h, max_w)) with 0 < min <= opt <= max, "
                    f"got {self.profile}"
                )

    def open(self, source: ModelSource) -> Session:
        trt = _import_tensorrt()
        device = Device(self.device)
        path, fp16_io = onnx_file(source, fp16=self.fp16)
        model = _Model(trt, device, self, path=path, fp16_io=fp16_io)
        session = TrtSession(model, scale=source.descriptor.scale, fp16_io=fp16_io, instances=max(1, self.streams))
        session.channels = source.descriptor.in_channels
        free, _ = device.memory()
        session.budget_bytes = int(free * GPU_BUDGET_SHARE)
        if self.fp16 and source.precision == "fp32" and self._probe_fits(source.descriptor):
            reason = half_problem(session.run, _reference(source, self), session.channels)
            if reason is not None:
                say_half_fallback(self.name, source.path.name, reason)
                return replace(self, fp16=False).open(source)
        return session

    def _probe_fits(self, descriptor: ModelDescriptor) -> bool:
        """Whether the fp16 test pattern is a size the model (and the profile, if any) takes."""
        if not probe_fits(descriptor, PROBE_SIZE):
            return False
        if self.profile is None:
            return True
        (min_h, min_w), _, (max_h, max_w) = self.profile
        return min_h <= PROBE_SIZE <= max_h and min_w <= PROBE_SIZE <= max_w

    @classmethod
    def unavailable(cls) -> str | None:
        """Why TensorRT cannot run here (not installed, no GPU); TensorRT itself is not imported to find out."""
        if importlib.util.find_spec("tensorrt") is None:
            return f"backend='trt' needs TensorRT: {INSTALL}"
        report = gpu_info.gpu_report()
        if not report.gpus:
            return f"backend='trt' needs an NVIDIA GPU: {report.problem}"
        return None


def _import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError as exc:
        raise MissingDependencyError(f"backend='trt' needs TensorRT ({exc}): {INSTALL}") from None
    return tensorrt


def _reference(source: ModelSource, backend: TensorRT) -> Any:
    """What fp16 is compared with: fp32 on the CPU through ONNX Runtime, else a TensorRT fp32 engine."""
    from vsparagon.runtime.backends.ort_cpu import OrtCpu

    if OrtCpu.unavailable() is None:
        return OrtCpu().open(source).run
    return replace(backend, fp16=False).open(source).run


class TrtSession(Session):
    """Engines of one model, one per input shape (or one per profile), built or loaded on first use."""

    def __init__(self, model: _Model, *, scale: int, fp16_io: bool, instances: int) -> None:
        super().__init__(scale=scale, input_dtype=np.float16 if fp16_io else np.float32, max_parallel=instances)
        self._model = model
        self._instances = instances

    def _run(self, batch: np.ndarray) -> np.ndarray:
        engine = self._model.engine_for(tuple(batch.shape), self._instances)
        with engine.pool.lend() as instance:
            return instance.run(batch)


class _Model:
    """One ONNX graph on one GPU with its build settings: a cache of engines by profile."""

    def __init__(self, trt: Any, device: Device, config: TensorRT, *, path: Path, fp16_io: bool) -> None:
        self._trt, self._device, self._config = trt, device, config
        self._path = path
        self._onnx = path.read_bytes()
        self._sha256 = sha256_file(path)
        self._io = "float16->float16" if fp16_io else "float32->float32"
        self._precision = "fp16" if fp16_io else "fp32"
        gpu = gpu_info.gpu_report().device(device.index)
        self._gpu = gpu.name if gpu else f"GPU {device.index}"
        self._compute = f"{gpu.compute[0]}.{gpu.compute[1]}" if gpu else "unknown"
        self._log = make_logger(trt)
        self._runtime = trt.Runtime(self._log)
        self._cache = EngineCache()
        self._engines: dict[tuple[Shape, Shape, Shape], _Engine] = {}
        self._lock = threading.Lock()

    def engine_for(self, shape: Shape, instances: int) -> _Engine:
        profile = self._profile(shape)
        with self._lock:
            engine = self._engines.get(profile)
            if engine is None:
                engine = self._engines[profile] = self._open(profile, instances)
            return engine

    def _profile(self, shape: Shape) -> tuple[Shape, Shape, Shape]:
        if self._config.profile is None:
            return shape, shape, shape
        lead = shape[:2]
        (min_h, min_w), (opt_h, opt_w), (max_h, max_w) = self._config.profile
        if not (min_h <= shape[2] <= max_h and min_w <= shape[3] <= max_w):
            raise BackendError(
                f"input {shape[3]}x{shape[2]} (width x height) is outside the TensorRT profile "
                f"{min_w}x{min_h} to {max_w}x{max_h}; widen profile= or leave it unset (one engine per shape)"
            )
        return (*lead, min_h, min_w), (*lead, opt_h, opt_w), (*lead, max_h, max_w)

    def _open(self, profile: tuple[Shape, Shape, Shape], instances: int) -> _Engine:
        config, trt = self._config, self._trt
        identity = EngineIdentity(
            model=self._path.name,
            onnx_sha256=self._sha256,
            precision=self._precision,
            io_types=self._io,
            profile=profile,
            workspace_mib=config.workspace_mib,
            opt_level=config.opt_level,
            trt_version=str(trt.__version__),
            gpu=self._gpu,
            compute=self._compute,
        )
        what = f"{self._path.name} at {identity.shape_text()}, {self._precision}"
        settings = BuildSettings(
            profile=profile, workspace_mib=config.workspace_mib, opt_level=config.opt_level, what=what
        )

        def build() -> bytes:
            self._device.activate()
            timing = self._cache.timing_file(trt_version=identity.trt_version, gpu=self._gpu, compute=self._compute)
            free, _ = self._device.memory()
            plan, updated = build_engine(
                trt, self._onnx, settings, timing=self._cache.read_timing(timing), free_mib=free >> 20
            )
            self._cache.write_timing(timing, updated)
            return plan

        def load(data: bytes) -> Any:
            self._device.activate()
            seen = len(self._log.errors)
            engine = self._runtime.deserialize_cuda_engine(data)
            if engine is None:
                raise CorruptEngine("; ".join(self._log.errors[seen:])[:300] or "TensorRT refused it")
            return engine

        engine = self._cache.fetch(identity, build=build, load=load, what=what)
        return _Engine(trt, self._device, engine, profile[2], instances, what=what)


class _Engine:
    """A deserialized engine and its instances."""

    def __init__(self, trt: Any, device: Device, engine: Any, largest: Shape, instances: int, *, what: str) -> None:
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or len(outputs) != 1:
            raise BackendError(
                f"the TensorRT engine of {what} has {len(inputs)} inputs and {len(outputs)} outputs; 1 each"
            )
        self.engine, self.what = engine, what
        self.input, self.output = inputs[0], outputs[0]
        self.input_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self.input)))
        self.output_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self.output)))
        self.pool = InstancePool(lambda _: _Instance(self, device, largest), instances)


class _Instance:
    """One frame in flight: an execution context, a stream, device buffers and pinned host buffers."""

    def __init__(self, owner: _Engine, device: Device, largest: Shape) -> None:
        device.activate()
        context = owner.engine.create_execution_context()
        if context is None:
            free, _ = device.memory()
            raise BackendError(
                f"TensorRT could not make an execution context for {owner.what} ({free >> 20} MiB of GPU memory "
                "free); use a smaller tile=, fewer num_streams, or close other programs on the GPU"
            )
        context.set_input_shape(owner.input, largest)
        largest_out = tuple(context.get_tensor_shape(owner.output))
        self.owner, self.device, self.context = owner, device, context
        self.stream = device.stream()
        self.device_in = device.alloc(math.prod(largest) * owner.input_dtype.itemsize)
        self.device_out = device.alloc(math.prod(largest_out) * owner.output_dtype.itemsize)
        self.host_in = device.pinned(math.prod(largest), owner.input_dtype)
        self.host_out = device.pinned(math.prod(largest_out), owner.output_dtype)
        context.set_tensor_address(owner.input, self.device_in)
        context.set_tensor_address(owner.output, self.device_out)

    def run(self, batch: np.ndarray) -> np.ndarray:
        owner, device, context = self.owner, self.device, self.context
        device.activate()
        host_in = self.host_in[: batch.size].reshape(batch.shape)
        np.copyto(host_in, batch, casting="same_kind")
        if not context.set_input_shape(owner.input, batch.shape):
            raise BackendError(f"the TensorRT engine of {owner.what} does not take input of shape {batch.shape}")
        shape = tuple(context.get_tensor_shape(owner.output))
        host_out = self.host_out[: math.prod(shape)]
        device.upload(self.device_in, host_in, self.stream)
        if not context.execute_async_v3(self.stream):
            raise BackendError(f"TensorRT failed to run {owner.what} (see the TensorRT lines above)")
        device.download(host_out, self.device_out, self.stream)
        device.synchronize(self.stream)
        return host_out.reshape(shape).astype(np.float32)
