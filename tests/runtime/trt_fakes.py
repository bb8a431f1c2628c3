"""A fake ``libcuda`` and a fake ``tensorrt`` module, for testing the TensorRT backend where no GPU exists.

They follow the documented APIs closely enough that the backend's real code runs:

- :class:`FakeCuda` answers the CUDA driver calls :mod:`vsparagon.runtime.backends.cuda_driver` makes,
  through the same ctypes arguments. "Device" memory is real host memory; copies and kernels are
  queued per stream and only happen at ``cuStreamSynchronize``, so a missing synchronisation
  shows up as wrong output. Copies check that they stay inside their allocations and that the
  host side is pinned memory; every call checks that a context is current on the calling thread.
- :func:`fake_tensorrt` builds a module with the builder, parser, runtime, engine and execution
  context calls :mod:`vsparagon.runtime.backends.trt` uses. Its "engine" serializes the ONNX graph
  and computes it with ONNX Runtime on the CPU.
"""

from __future__ import annotations

import ctypes
import enum
import importlib.machinery
import json
import threading
import types
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort

MAGIC = b"FAKETRT1"


class FakeCuda:
    """The CUDA driver calls of ``cuda_driver.Device``, on host memory."""

    OUT_OF_MEMORY = 2

    def __init__(self, *, devices: int = 1, free_mib: int = 20000) -> None:
        self.devices = devices
        self.free = free_mib << 20
        self.allocations: dict[int, tuple[ctypes.Array, bool]] = {}  # address -> (buffer, pinned)
        self.queues: dict[int, list] = {}
        self.fail_alloc = False
        self.synchronized = 0
        self._current = threading.local()
        self._lock = threading.Lock()

    # devices and contexts
    def cuInit(self, flags):
        return 0

    def cuDeviceGetCount(self, count):
        count.contents.value = self.devices
        return 0

    def cuDeviceGet(self, handle, index):
        if not 0 <= index.value < self.devices:
            return 101  # CUDA_ERROR_INVALID_DEVICE
        handle.contents.value = index.value
        return 0

    def cuDevicePrimaryCtxRetain(self, context, device):
        context.contents.value = 0x1000 + device.value
        return 0

    def cuCtxSetCurrent(self, context):
        self._current.context = context.value
        return 0

    def require_context(self):
        assert getattr(self._current, "context", None), "a CUDA call on a thread without a current context"

    def cuMemGetInfo_v2(self, free, total):
        self.require_context()
        free.contents.value, total.contents.value = self.free, 80000 << 20
        return 0

    def cuGetErrorName(self, code, name):
        names = {2: b"CUDA_ERROR_OUT_OF_MEMORY", 101: b"CUDA_ERROR_INVALID_DEVICE"}
        if code.value not in names:
            return 1
        name.contents.value = names[code.value]
        return 0

    # memory
    def _allocate(self, pointer, size, *, pinned: bool):
        self.require_context()
        if self.fail_alloc:
            return self.OUT_OF_MEMORY
        buffer = (ctypes.c_uint8 * size.value)()
        address = ctypes.addressof(buffer)
        with self._lock:
            self.allocations[address] = (buffer, pinned)
        pointer.contents.value = address
        return 0

    def cuMemAlloc_v2(self, pointer, size):
        return self._allocate(pointer, size, pinned=False)

    def cuMemAllocHost_v2(self, pointer, size):
        return self._allocate(pointer, size, pinned=True)

    def region(self, address: int, nbytes: int, *, pinned: bool) -> None:
        """Check that ``nbytes`` at ``address`` lie inside one allocation of the given kind."""
        for start, (buffer, is_pinned) in self.allocations.items():
            if start <= address < start + len(buffer):
                assert is_pinned == pinned, f"{'pinned host' if pinned else 'device'} memory expected"
                assert address + nbytes <= start + len(buffer), "a copy past the end of its allocation"
                return
        raise AssertionError(f"address {address:#x} is not in any allocation")

    def array(self, address: int, shape, dtype) -> np.ndarray:
        """A view of device memory (for the fake engine)."""
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        self.region(address, nbytes, pinned=False)
        raw = (ctypes.c_uint8 * nbytes).from_address(address)
        return np.frombuffer(raw, dtype=dtype).reshape(shape)

    # streams
    def cuStreamCreate(self, stream, flags):
        self.require_context()
        assert flags.value == 1, "streams are non-blocking"
        with self._lock:
            handle = len(self.queues) + 1
            self.queues[handle] = []
        stream.contents.value = handle
        return 0

    def enqueue(self, stream: int, work) -> None:
        self.queues[stream].append(work)

    def cuMemcpyHtoDAsync_v2(self, dst, src, count, stream):
        self.require_context()
        self.region(dst.value, count.value, pinned=False)
        self.region(src.value, count.value, pinned=True)
        self.enqueue(stream.value, lambda: ctypes.memmove(dst.value, src.value, count.value))
        return 0

    def cuMemcpyDtoHAsync_v2(self, dst, src, count, stream):
        self.require_context()
        self.region(src.value, count.value, pinned=False)
        self.region(dst.value, count.value, pinned=True)
        self.enqueue(stream.value, lambda: ctypes.memmove(dst.value, src.value, count.value))
        return 0

    def cuStreamSynchronize(self, stream):
        queue = self.queues[stream.value]
        while queue:
            queue.pop(0)()
        self.synchronized += 1
        return 0


@dataclass
class TrtState:
    """What the fake TensorRT did, and how it should misbehave."""

    builds: int = 0
    deserialized: int = 0
    fail_build: str | None = None
    """An error the builder logs before returning None."""
    half_inf: bool = False
    """fp16 engines output inf (a model that overflows fp16)."""
    phases: list[str] = field(default_factory=list)
    workspace: int | None = None
    opt_level: int | None = None
    profiles: list[tuple] = field(default_factory=list)
    timing_in: list[bytes] = field(default_factory=list)


def fake_tensorrt(cuda: FakeCuda, *, version: str = "10.99.0") -> types.ModuleType:
    """A ``tensorrt`` module whose engines compute with ONNX Runtime; ``module.state`` is its :class:`TrtState`."""
    trt = types.ModuleType("tensorrt")
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    trt.__version__ = version
    state = TrtState()
    trt.state = state

    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    class ILogger:
        def __init__(self):
            pass

    ILogger.Severity = Severity

    class IProgressMonitor:
        def __init__(self):
            pass

    class NetworkDefinitionCreationFlag(enum.IntEnum):
        STRONGLY_TYPED = 5

    class MemoryPoolType(enum.IntEnum):
        WORKSPACE = 0

    class TensorIOMode(enum.IntEnum):
        NONE = 0
        INPUT = 1
        OUTPUT = 2

    class DataType(enum.IntEnum):
        FLOAT = 0
        HALF = 1

    def nptype(dtype):
        return {DataType.FLOAT: np.float32, DataType.HALF: np.float16}[dtype]

    class Tensor:
        def __init__(self, name):
            self.name = name

    class Network:
        def __init__(self, flags):
            self.flags = flags
            self.onnx = None

        def get_input(self, index):
            return Tensor(self.onnx.graph.input[index].name)

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.logger, self.errors = network, logger, []

        def parse(self, data):
            try:
                self.network.onnx = onnx.load_from_string(data)
            except Exception as exc:
                self.errors.append(f"ModelImporter: failed to parse the ONNX model ({exc})")
                return False
            return True

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, index):
            return self.errors[index]

    class TimingCache:
        def __init__(self, data):
            self.data = bytes(data)

        def serialize(self):
            return self.data

    class Profile:
        def set_shape(self, name, low, opt, high):
            self.shape = (name, tuple(low), tuple(opt), tuple(high))

    class Config:
        def __init__(self):
            self.builder_optimization_level = 3
            self.progress_monitor = None
            self.profiles = []
            self.timing = None

        def set_memory_pool_limit(self, pool, size):
            assert pool == MemoryPoolType.WORKSPACE
            state.workspace = size

        def create_timing_cache(self, data):
            state.timing_in.append(bytes(data))
            return TimingCache(data)

        def set_timing_cache(self, cache, ignore_mismatch):
            self.timing = cache
            return True

        def add_optimization_profile(self, profile):
            self.profiles.append(profile)
            return 0

    class Builder:
        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags):
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            assert network.flags & (1 << int(NetworkDefinitionCreationFlag.STRONGLY_TYPED)), "strongly typed"
            monitor = config.progress_monitor
            assert isinstance(monitor, IProgressMonitor)
            monitor.phase_start("Building engine", None, 2)
            monitor.phase_start("Tactic timing", "Building engine", 1)
            assert monitor.step_complete("Tactic timing", 0) is True
            monitor.phase_finish("Tactic timing")
            assert monitor.step_complete("Building engine", 0) is True
            monitor.phase_finish("Building engine")
            state.opt_level = config.builder_optimization_level
            if state.fail_build:
                self.logger.log(Severity.ERROR, state.fail_build)
                return None
            (profile,) = config.profiles
            state.profiles.append(profile.shape[1:])
            state.builds += 1
            config.timing.data += b"t"  # one more timing entry
            header = json.dumps({"profile": profile.shape[1:]}).encode()
            return MAGIC + len(header).to_bytes(4, "little") + header + network.onnx.SerializeToString()

    class Context:
        def __init__(self, engine):
            self.engine = engine
            self.addresses = {}
            self.shape = None

        def set_input_shape(self, name, shape):
            low, _, high = self.engine.profile
            assert name == self.engine.names[0]
            assert all(a <= s <= b for a, s, b in zip(low, shape, high, strict=True)), (shape, low, high)
            self.shape = tuple(shape)
            return True

        def get_tensor_shape(self, name):
            n, _, h, w = self.shape
            if name == self.engine.names[0]:
                return self.shape
            return (n, self.engine.out_channels, h * self.engine.scale, w * self.engine.scale)

        def set_tensor_address(self, name, address):
            self.addresses[name] = address
            return True

        def execute_async_v3(self, stream_handle):
            cuda.require_context()
            engine, shape = self.engine, self.shape
            source, target = self.addresses[engine.names[0]], self.addresses[engine.names[1]]
            out_shape = self.get_tensor_shape(engine.names[1])

            def compute():
                x = cuda.array(source, shape, engine.dtype).copy()
                (y,) = engine.session.run(None, {engine.names[0]: x})
                if state.half_inf and engine.dtype == np.float16:
                    y = np.full_like(y, np.inf)
                cuda.array(target, out_shape, engine.dtype)[...] = y

            cuda.enqueue(int(stream_handle), compute)
            return True

    class Engine:
        def __init__(self, model, profile):
            self.model = model
            self.profile = [tuple(s) for s in profile]
            self.names = [model.graph.input[0].name, model.graph.output[0].name]
            elem = model.graph.input[0].type.tensor_type.elem_type
            self.dtype = np.float16 if elem == onnx.TensorProto.FLOAT16 else np.float32
            self.session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
            low = self.profile[0]
            (probe,) = self.session.run(None, {self.names[0]: np.zeros(low, self.dtype)})
            self.scale = probe.shape[-1] // low[-1]
            self.out_channels = probe.shape[1]

        @property
        def num_io_tensors(self):
            return 2

        def get_tensor_name(self, index):
            return self.names[index]

        def get_tensor_mode(self, name):
            return TensorIOMode.INPUT if name == self.names[0] else TensorIOMode.OUTPUT

        def get_tensor_dtype(self, name):
            return DataType.HALF if self.dtype == np.float16 else DataType.FLOAT

        def create_execution_context(self):
            return Context(self)

    class Runtime:
        def __init__(self, logger):
            self.logger = logger

        def deserialize_cuda_engine(self, data):
            cuda.require_context()
            data = bytes(data)
            if not data.startswith(MAGIC):
                self.logger.log(Severity.ERROR, "IRuntime::deserializeCudaEngine: Error Code 1: Serialization "
                                "(Serialization assertion magicTagRead == kMAGIC_TAG failed.)")  # fmt: skip
                return None
            size = int.from_bytes(data[8:12], "little")
            header = json.loads(data[12 : 12 + size])
            state.deserialized += 1
            return Engine(onnx.load_from_string(data[12 + size :]), header["profile"])

    for name, value in list(locals().items()):
        if isinstance(value, type) or name == "nptype":
            setattr(trt, name, value)
    trt.Logger = ILogger
    return trt
