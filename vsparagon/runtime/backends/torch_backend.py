"""PyTorch: our checkpoints (shipped releases included) and other projects'; on a CUDA GPU when there is one.

On a GPU each frame in flight has a lane: its own CUDA stream, pinned host buffers made
once per shape, and a CUDA graph per shape captured after warm-up (eager where capture
fails). A frame is uploaded once, tiled and joined on the device and downloaded once, so
the copies of one lane overlap the compute of another. On the CPU the same code runs with
one lane, no stream and no graph.

The CUDA paths (streams, pinned buffers, graphs, fp16/bf16, the fp16 check on a device) have
not executed on a GPU; the tests run everything else with real torch on the CPU.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from vsparagon.catalogue.descriptor import ModelDescriptor
from vsparagon.catalogue.files import is_foreign_checkpoint, read_safetensors_descriptor
from vsparagon.errors import CheckpointError, ConfigError, MissingDependencyError
from vsparagon.runtime.backends.base import Backend, BackendError, Session
from vsparagon.runtime.backends.gpu_common import InstancePool, half_problem, probe_fits, say_half_fallback
from vsparagon.runtime.policy import TilePlan
from vsparagon.runtime.source import ModelSource
from vsparagon.runtime.tiling import blend_weight, plan_tiles

if TYPE_CHECKING:
    import torch

Half = Literal["fp16", "bf16"]
#: Eager runs of a shape before its CUDA graph is captured (cuDNN picks its algorithms in these).
GRAPH_WARMUP = 2
#: Share of the GPU's free memory (at open) that ``tile=0`` plans all frames in flight to use.
GPU_BUDGET_SHARE = 0.6
_INSTALL = "backend='torch' needs PyTorch: pip install 'vsparagon[export]'"


class TorchSession(Session):
    """A module on one device, run by ``streams`` lanes (one on the CPU); PyTorch releases the GIL in its kernels."""

    def __init__(
        self, model: Any, device: Any, dtype: Any, *, scale: int, streams: int = 1, graphs: bool = True
    ) -> None:
        import torch

        on_gpu = device.type == "cuda"
        lanes = streams if on_gpu else 1
        host_dtype = np.float16 if dtype == torch.float16 else np.float32
        super().__init__(scale=scale, input_dtype=host_dtype, max_parallel=lanes)
        self.precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, "fp32")
        self.device = device
        """Where the module runs (``cuda:N`` or ``cpu``)."""
        self._pool = InstancePool(lambda _: _Lane(model, device, dtype, graphs=graphs and on_gpu), lanes)
        self._weights: dict[tuple[TilePlan, int, int], list[Any]] = {}

    def _run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        oom = self._named_out_of_memory(batch.shape)
        with self._pool.lend() as lane, oom, torch.inference_mode(), lane.on_stream():
            out = lane.forward(lane.upload(batch)).float()
            return lane.download(out).copy()

    def run_frame_into(self, image: np.ndarray, plan: TilePlan, planes: list[np.ndarray]) -> None:
        """Upload ``image`` once, tile and join on the device, download once (see :meth:`Session.run_frame_into`)."""
        import torch

        oom = self._named_out_of_memory(image.shape)
        with self._pool.lend() as lane, oom, torch.inference_mode(), lane.on_stream():
            frame = lane.upload(image)  # (C, H, W)
            # a grey model given several planes runs each as one image of a batch
            x = frame[:, None] if self.channels == 1 and frame.shape[0] > 1 else frame[None]
            if not lane.cuda:  # the CPU writes straight into the frame's planes
                self._join(lane, x, plan, [torch.from_numpy(plane) for plane in planes])
                return
            # joined on the device, cast to the planes' precision there, downloaded once
            out = self._join(lane, x, plan, None)
            assert out is not None  # returned when no planes are given
            values = lane.download(out.to(torch.float16 if planes[0].dtype == np.float16 else torch.float32))
            for plane, value in zip(planes, values, strict=True):
                np.copyto(plane, value)

    @contextlib.contextmanager
    def _named_out_of_memory(self, shape: tuple[int, ...]) -> Iterator[None]:
        """CUDA's out-of-memory error as one line that names the fix."""
        import torch

        try:
            yield
        except torch.cuda.OutOfMemoryError:  # torch.OutOfMemoryError only from 2.5; the extra allows 2.4
            size = "x".join(map(str, shape[-2:][::-1]))
            raise BackendError(
                f"{self.device} ran out of memory on a {size} input ({self.precision}): pass a smaller tile= "
                "(e.g. tile=512), fewer frames in flight (num_streams=1), or precision='fp16'"
            ) from None

    def _join(
        self, lane: _Lane, x: torch.Tensor, plan: TilePlan, dest: list[torch.Tensor] | None
    ) -> torch.Tensor | None:
        """(N, C, H, W) -> (N * C_out, H*s, W*s): whole, or tile by tile as ``plan`` cuts it, joined where ``x`` is.

        ``dest``: the output planes to write, or None: a new tensor on ``x``'s device, returned.
        """
        import torch
        import torch.nn.functional as F

        n, _, height, width = x.shape
        s = self.scale
        if plan.whole(height, width):
            out = lane.forward(x).flatten(0, 1)
            if dest is None:
                return out
            for plane, values in zip(dest, out, strict=True):
                plane.copy_(values)
            return None
        tiles = plan_tiles(
            height, width, tile_h=plan.tile_h, tile_w=plan.tile_w, overlap=plan.overlap, multiple_of=plan.multiple_of
        )
        weights = self._blend_weights(plan, height, width, x.device) if plan.join == "blend" else []
        full = None
        for i, tile in enumerate(tiles):
            w = tile.window
            window = x[:, :, w.y0 : w.y1, w.x0 : w.x1]
            pad_h, pad_w = -w.height % plan.multiple_of, -w.width % plan.multiple_of
            if pad_h or pad_w:  # edge replicate, as the host path pads
                window = F.pad(window.float(), (0, pad_w, 0, pad_h), mode="replicate")
            y = lane.forward(window).flatten(0, 1)  # (N * C_out, h*s, w*s)
            if dest is None:
                full = torch.empty((y.shape[0], height * s, width * s), dtype=torch.float32, device=x.device)
                dest = list(full)
            elif i == 0 and len(dest) != y.shape[0]:
                raise BackendError(f"the model gives {y.shape[0]} planes for {n} images, the frame has {len(dest)}")
            if i == 0 and plan.join == "blend":
                for plane in dest:
                    plane.zero_()
            oy, ox = w.y0 * s, w.x0 * s
            if plan.join == "crop":
                c = tile.core.scaled(s)
                for plane, values in zip(dest, y, strict=True):
                    plane[c.y0 : c.y1, c.x0 : c.x1] = values[c.y0 - oy : c.y1 - oy, c.x0 - ox : c.x1 - ox]
            else:
                region, weight = weights[i]
                r = region
                for plane, values in zip(dest, y, strict=True):
                    plane[r.y0 : r.y1, r.x0 : r.x1] += weight * values[r.y0 - oy : r.y1 - oy, r.x0 - ox : r.x1 - ox]
        return full

    def _blend_weights(self, plan: TilePlan, height: int, width: int, device: Any) -> list[Any]:
        """Each tile's output region and weight on ``device``, made once per (plan, frame size)."""
        import torch

        key = (plan, height, width)
        if key not in self._weights:
            tiles = plan_tiles(
                height, width, tile_h=plan.tile_h, tile_w=plan.tile_w, overlap=plan.overlap,
                multiple_of=plan.multiple_of,
            )  # fmt: skip
            found = []
            for tile in tiles:
                region, weight = blend_weight(
                    tile, height=height, width=width, scale=self.scale, overlap=plan.overlap, tile_h=plan.tile_h,
                    tile_w=plan.tile_w,
                )  # fmt: skip
                found.append((region, torch.from_numpy(weight).to(device)))
            self._weights[key] = found
        return self._weights[key]


class _Lane:
    """One frame in flight: a CUDA stream (none on the CPU), pinned host buffers and CUDA graphs, per shape."""

    def __init__(self, model: Any, device: Any, dtype: Any, *, graphs: bool) -> None:
        import torch

        self.model, self.device, self.dtype = model, device, dtype
        self.cuda = device.type == "cuda"
        self.stream = torch.cuda.Stream(device) if self.cuda else None
        self.graphs = graphs
        self._pinned: dict[tuple[tuple[int, ...], Any], torch.Tensor] = {}
        self._captured: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor, Any] | None] = {}
        self._runs: dict[tuple[int, ...], int] = {}

    def on_stream(self) -> Any:
        """A context in which this lane's work goes to its own CUDA stream (nothing on the CPU)."""
        import torch

        return torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext()

    def _host(self, shape: tuple[int, ...], dtype: Any) -> torch.Tensor:
        """A pinned host buffer, made once per shape and type."""
        import torch

        key = (shape, dtype)
        if key not in self._pinned:
            self._pinned[key] = torch.empty(shape, dtype=dtype, pin_memory=True)
        return self._pinned[key]

    def upload(self, array: np.ndarray) -> torch.Tensor:
        """Host array -> tensor on the device (asynchronously, through a pinned buffer, on a GPU)."""
        import torch

        host = torch.from_numpy(np.ascontiguousarray(array))
        if not self.cuda:
            return host
        pinned = self._host(tuple(host.shape), host.dtype)
        pinned.copy_(host)  # the previous frame's upload from this buffer finished: the lane synchronized
        return pinned.to(self.device, non_blocking=True)

    def download(self, tensor: torch.Tensor) -> np.ndarray:
        """Tensor -> host array (a pinned buffer reused by the next call on a GPU: copy what you keep)."""
        if not self.cuda:
            return tensor.detach().numpy()
        pinned = self._host(tuple(tensor.shape), tensor.dtype)
        pinned.copy_(tensor, non_blocking=True)
        assert self.stream is not None
        self.stream.synchronize()  # releases the GIL while the GPU finishes
        return pinned.numpy()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model on ``x`` (N, C, h, w): eager, or the shape's CUDA graph once captured (valid till its next use)."""
        import torch

        x = x.to(self.dtype)
        if not self.cuda:
            return self.model(x)
        x = x.contiguous(memory_format=torch.channels_last)
        shape = tuple(x.shape)
        if self.graphs and shape not in self._captured:
            self._runs[shape] = self._runs.get(shape, 0) + 1
            if self._runs[shape] > GRAPH_WARMUP:
                self._captured[shape] = self._capture(x)
        captured = self._captured.get(shape)
        if captured is None:
            return self.model(x)
        static_in, static_out, graph = captured
        static_in.copy_(x)
        graph.replay()
        return static_out

    def _capture(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Any] | None:
        """A CUDA graph of the model on ``x``'s shape, or None (eager from now on) where capture fails."""
        import torch

        static_in = x.clone()
        graph = torch.cuda.CUDAGraph()
        try:
            # thread_local: other lanes keep working on their own streams while this one captures
            with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
                static_out = self.model(static_in)
        except RuntimeError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            print(
                f"vsparagon: torch runs {tuple(x.shape)} eagerly (CUDA graph capture failed: {reason})", file=sys.stderr
            )
            return None
        return static_in, static_out, graph


@dataclass(frozen=True, kw_only=True)
class TorchBackend(Backend):
    """Runs checkpoints directly: ours (``.safetensors``, and the shipped releases' beside their ONNX files) and
    other projects' (through spandrel); on ``cuda:device`` when PyTorch sees a GPU, else on the CPU."""

    name = "torch"
    runs_checkpoints = True

    half: Half = "fp16"
    """Which reduced precision ``fp16=True`` computes in: IEEE half, or bfloat16 (fp32's range; a GPU of
    compute capability 8.0 or newer); the plugin's ``precision='bf16'``."""
    cuda_graphs: bool = True
    """Replay a CUDA graph per input shape after :data:`GRAPH_WARMUP` eager runs (eager where capture fails)."""

    def open(self, source: ModelSource) -> Session:
        checkpoint = checkpoint_of(source)
        torch, models = _import_torch()
        if self.threads:
            torch.set_num_threads(self.threads)
        device = self._device(torch)
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[self.half] if self.fp16 else torch.float32
        module: Any
        if is_foreign_checkpoint(checkpoint):
            module = models.load_foreign(checkpoint).module
        else:
            module = models.load(checkpoint, fused=True)
        module = module.eval()
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # static shapes: cuDNN's search pays off
            module = module.to(device, memory_format=torch.channels_last)
        if dtype == torch.float16 and probe_fits(source.descriptor):
            module, dtype = checked_half(module, device, model=source.path.name, channels=source.descriptor.in_channels)
        else:
            module = module.to(dtype)
        session = TorchSession(
            module, device, dtype, scale=source.descriptor.scale, streams=max(1, self.streams), graphs=self.cuda_graphs
        )
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            session.budget_bytes = int(free * GPU_BUDGET_SHARE)
        return session

    def _device(self, torch: Any) -> Any:
        """``cuda:device`` when PyTorch sees a GPU (checking the index and the precision asked), else the CPU."""
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        asked = f"precision='{self.half}'" if self.half == "bf16" else "fp16=True"
        if count == 0:
            if self.device != 0:
                raise BackendError(
                    f"device={self.device} asks for a GPU, and PyTorch sees no CUDA device (no NVIDIA driver, or a "
                    "CPU-only PyTorch build); install a CUDA build of PyTorch, or leave device unset to run on the CPU"
                )
            if self.fp16:
                raise ConfigError(
                    f"{asked}: backend='torch' runs half precision only on a CUDA GPU and none is available; "
                    "use fp16=False, or backend='openvino' for bf16 on a CPU that has it"
                )
            return torch.device("cpu")
        if self.device >= count:
            raise BackendError(
                f"device={self.device} does not exist: PyTorch sees {count} CUDA GPU{'s' if count > 1 else ''} "
                f"(device=0{f' to {count - 1}' if count > 1 else ''}); pass one of those"
            )
        if self.fp16 and self.half == "bf16":
            major, minor = torch.cuda.get_device_capability(self.device)
            if major < 8:
                name = torch.cuda.get_device_name(self.device)
                raise ConfigError(
                    f"precision='bf16': GPU {self.device} ({name}, compute capability {major}.{minor}) has no "
                    "bfloat16 arithmetic (8.0 and newer do); use precision='fp16' or 'fp32'"
                )
        return torch.device(f"cuda:{self.device}")

    def on_gpu(self) -> bool:
        """True when PyTorch sees a CUDA GPU (imports PyTorch)."""
        torch, _ = _import_torch()
        return bool(torch.cuda.is_available() and torch.cuda.device_count() > 0)

    @classmethod
    def default_fp16(cls, descriptor: ModelDescriptor, *, bits: int | None) -> bool:
        """fp16 on a CUDA GPU for a model marked fp16-safe (checked on a test pattern when it opens); else fp32."""
        if not descriptor.fp16_safe or importlib.util.find_spec("torch") is None:
            return False
        torch, _ = _import_torch()
        return bool(torch.cuda.is_available())

    @classmethod
    def unavailable(cls) -> str | None:
        """None when PyTorch is installed (found without importing it)."""
        if importlib.util.find_spec("torch") is None:
            return _INSTALL
        return None


def checkpoint_of(source: ModelSource) -> Path:
    """The checkpoint PyTorch loads for ``source``: the file itself, or the one a release ships beside its ONNX.

    A release (``paragon release``) writes ``STEM.safetensors`` and the parity-checked ``STEM.onnx`` /
    ``STEM_fp16.onnx`` from one fused model; the checkpoint is used when its descriptor is the ONNX file's.

    Raises:
        ConfigError: an ONNX file with no such checkpoint beside it.
    """
    if source.kind == "checkpoint":
        return source.path
    stem = source.path.stem.removesuffix("_fp16")
    beside = source.path.with_name(f"{stem}.safetensors")
    refusal = (
        "backend='torch' runs .safetensors checkpoints (and other projects' .pth/.ckpt), and the releases that "
        f"ship one beside their ONNX file; {source.path.name} has no {beside.name} beside it: for an .onnx model "
        "use backend='ort-cpu' or 'openvino'"
    )
    if not beside.is_file():
        raise ConfigError(refusal)
    try:
        described = read_safetensors_descriptor(beside)
    except CheckpointError as exc:
        raise ConfigError(f"{refusal} ({beside.name} is unreadable: {exc})") from None
    if described != source.descriptor:
        raise ConfigError(f"{refusal} ({beside.name} describes another model: {described.variant} x{described.scale})")
    return beside


def checked_half(module: Any, device: Any, *, model: str, channels: int) -> tuple[Any, Any]:
    """``module`` in fp16 and ``torch.float16`` when its fp16 output on a test pattern is finite and close to fp32's,
    else ``module`` as it is (fp32) and ``torch.float32``, said once on stderr."""
    import torch

    half = copy.deepcopy(module).to(torch.float16)
    if reason := half_problem(_probe(half, device, torch.float16), _probe(module, device, torch.float32), channels):
        say_half_fallback(TorchBackend.name, model, reason)
        return module, torch.float32
    return half, torch.float16


def _import_torch() -> tuple[Any, Any]:
    try:
        import torch

        from vsparagon import models
    except ImportError:
        raise MissingDependencyError(_INSTALL) from None
    return torch, models


def _probe(module: Any, device: Any, dtype: Any) -> Any:
    """``module`` as a numpy function on ``device`` in ``dtype`` (for the fp16 check)."""
    import torch

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(device, dtype)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            return module(x).float().cpu().numpy()

    return run
