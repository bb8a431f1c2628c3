"""PyTorch, for checkpoints that cannot be exported; CUDA when available, else CPU."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import numpy as np

from vsparagon.catalogue.files import is_foreign_checkpoint
from vsparagon.errors import ConfigError, MissingDependencyError
from vsparagon.runtime.backends.base import Backend, Session
from vsparagon.runtime.source import ModelSource


class TorchSession(Session):
    """A fused ParagonSR module, or a foreign one; PyTorch releases the GIL inside its kernels."""

    def __init__(self, model: Any, device: Any, dtype: Any, *, scale: int) -> None:
        super().__init__(scale=scale, input_dtype=np.float32, max_parallel=1)
        self._model, self._device, self._dtype = model, device, dtype
        self.precision = "fp16" if str(dtype) == "torch.float16" else "fp32"

    def _run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self._device, self._dtype)
            return self._model(x).float().cpu().numpy()


@dataclass(frozen=True, kw_only=True)
class TorchBackend(Backend):
    """Runs checkpoints directly: ours (``.safetensors``) and other projects' (through spandrel)."""

    name = "torch"
    runs_checkpoints = True

    def open(self, source: ModelSource) -> Session:
        if source.kind != "checkpoint":
            raise ConfigError(
                "backend='torch' runs .safetensors checkpoints (and other projects' .pth/.ckpt); for an .onnx "
                "model use backend='ort-cpu' or 'openvino'"
            )
        try:
            import torch

            from vsparagon import models
        except ImportError:
            raise MissingDependencyError("backend='torch' needs PyTorch: pip install 'vsparagon[export]'") from None
        if self.threads:
            torch.set_num_threads(self.threads)
        device = torch.device(f"cuda:{self.device}") if torch.cuda.is_available() else torch.device("cpu")
        if self.fp16 and device.type != "cuda":
            raise ConfigError(
                "fp16=True: backend='torch' runs half precision only on a CUDA GPU and none is available; "
                "use fp16=False, or backend='openvino' for bf16 on a CPU that has it"
            )
        dtype = torch.float16 if self.fp16 else torch.float32
        model: torch.nn.Module
        if is_foreign_checkpoint(source.path):
            model = models.load_foreign(source.path).module
        else:
            model = models.load(source.path, fused=True)
        model = model.to(device, dtype).eval()
        return TorchSession(model, device, dtype, scale=source.descriptor.scale)

    @classmethod
    def unavailable(cls) -> str | None:
        """None when PyTorch is installed (found without importing it)."""
        if importlib.util.find_spec("torch") is None:
            return "backend='torch' needs PyTorch: pip install 'vsparagon[export]'"
        return None
