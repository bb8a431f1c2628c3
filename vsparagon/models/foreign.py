"""Other projects' checkpoints (OpenModelDB, chaiNNer, traiNNer-redux, neosr), loaded with spandrel.

spandrel recognises a state dict's architecture and hyperparameters and rebuilds its PyTorch
module. Pickled files (``.pth``, ``.ckpt``) are opened weights-only (``torch.load(weights_only=True)``):
tensors and plain containers, never code; a file that needs code to load is refused.
spandrel is imported when a file is loaded (the ``zoo`` extra).
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vsparagon.catalogue import CHANNELS
from vsparagon.catalogue.files import PICKLE_SUFFIXES
from vsparagon.errors import CheckpointError, MissingDependencyError
from vsparagon.models.checkpoint import _first_line


class ForeignModule(nn.Module):
    """A spandrel model as ``(N, C, H, W) -> (N, C, H*s, W*s)``, called as spandrel calls it, output in [0, 1]."""

    def __init__(self, inner: nn.Module, call: Callable[[nn.Module, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.inner = inner.eval()
        self._call = call

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """The model's output before the clamp (what the receptive-field probe looks at)."""
        # Some architectures scale their input in place (RCAN: x *= rgb_range): never the caller's tensor.
        return self._call(self.inner, x.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.raw(x).clamp(0, 1)


@dataclass(frozen=True, kw_only=True)
class ForeignModel:
    """A foreign checkpoint's module and what spandrel reported about it."""

    module: ForeignModule
    """The module, in eval mode, on the CPU, float32."""
    architecture: str
    """spandrel's architecture id (``ESRGAN``, ``Compact``, ``SPAN``, ``PLKSR``, ...)."""
    name: str
    """spandrel's display name of the architecture (``RealESRGAN Compact``)."""
    tags: tuple[str, ...]
    """spandrel's size tags (``64nf``, ``23nb``)."""
    purpose: str
    """``SR``, ``FaceSR`` or ``Restoration`` (scale 1)."""
    scale: int
    in_channels: int
    out_channels: int
    multiple_of: int
    """Input sides must be multiples of this."""
    min_size: int
    """Input sides must be at least this."""
    square: bool
    """Input must be square."""
    tiling: str
    """spandrel's tiling advice: ``supported``, ``discouraged`` (global context) or ``internal``."""
    supports_half: bool
    """spandrel's word on float16."""
    parameters: int
    """Parameter count."""
    spandrel_version: str


def import_spandrel() -> Any:
    """spandrel, or a one-line MissingDependencyError naming the ``zoo`` extra."""
    try:
        import spandrel
    except ImportError as exc:
        raise MissingDependencyError(
            f"another project's checkpoint is loaded with spandrel ({exc.name} is not installed): "
            "pip install 'vsparagon[zoo]'"
        ) from None
    return spandrel


def load_foreign(path: str | os.PathLike[str]) -> ForeignModel:
    """Load a foreign checkpoint with spandrel, safely.

    Raises:
        CheckpointError: naming the file: a pickle that needs code, an unreadable file, an
            architecture spandrel does not know (with the list it does), a model that is not
            image-to-image or whose channels are neither RGB nor grey.
        MissingDependencyError: spandrel is not installed.
    """
    source = Path(path)
    spandrel = import_spandrel()
    state = spandrel.canonicalize_state_dict(read_state_dict(source))
    try:
        described = spandrel.MAIN_REGISTRY.load(state)
    except spandrel.UnsupportedModelError:
        names = sorted({support.architecture.name for support in spandrel.MAIN_REGISTRY.architectures()})
        raise CheckpointError(
            f"{source}: spandrel {spandrel.__version__} does not recognise this checkpoint's architecture; "
            f"it knows: {', '.join(names)} (a training state rather than a model, or a newer architecture: "
            "update spandrel)"
        ) from None
    except Exception as exc:  # a known layout whose tensors do not fit it: spandrel raises many types
        raise CheckpointError(f"{source}: spandrel could not build the model ({_first_line(exc)})") from None
    arch = described.architecture
    if not isinstance(described, spandrel.ImageModelDescriptor):
        raise CheckpointError(
            f"{source}: the {arch.name} model is for {described.purpose} and takes an image and a mask; "
            "paragon.Upscale runs image-to-image models only"
        )
    channels = (described.input_channels, described.output_channels)
    if channels not in CHANNELS:
        raise CheckpointError(
            f"{source}: the {arch.name} model takes {channels[0]} channels and gives {channels[1]}; "
            "paragon.Upscale runs RGB (3 -> 3) and grey (1 -> 1) models"
        )
    size = described.size_requirements
    # spandrel's own call (some architectures return a tuple); no public name for it.
    call = getattr(described, "_call_fn", None) or (lambda model, image: model(image))
    module = ForeignModule(described.model.float().cpu(), call)
    return ForeignModel(
        module=module,
        architecture=str(arch.id),
        name=arch.name,
        tags=tuple(described.tags),
        purpose=described.purpose,
        scale=described.scale,
        in_channels=channels[0],
        out_channels=channels[1],
        multiple_of=size.multiple_of,
        min_size=size.minimum,
        square=size.square,
        tiling=described.tiling.name.lower(),
        supports_half=described.supports_half,
        parameters=sum(p.numel() for p in module.parameters()),
        spandrel_version=spandrel.__version__,
    )


def read_state_dict(path: Path) -> dict[str, Any]:
    """The tensors of a ``.safetensors`` file, or of a pickled ``.pth``/``.ckpt`` file loaded weights-only."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: not a readable safetensors file ({_first_line(exc)})") from None
    if path.suffix.lower() not in PICKLE_SUFFIXES:
        raise CheckpointError(f"{path}: unknown checkpoint type; use a .pth, .ckpt or .safetensors file")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        if found is None:  # junk, or a pickle op the weights-only unpickler does not take
            reason = re.search(r"Unsupported operand \d+|invalid load key[^.]*", str(exc))
            raise CheckpointError(
                f"{path}: not a readable PyTorch checkpoint ({reason.group(0) if reason else _first_line(exc)})"
            ) from None
        raise CheckpointError(
            f"{path}: refused: loading it would run code ({found.group(1)}); vsparagon opens .pth/.ckpt files "
            "weights-only (tensors and plain containers). Get a .safetensors version of the model, or re-save "
            "its state dict from a trusted environment"
        ) from None
    except Exception as exc:  # torch.load raises many types for files that are not checkpoints
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {_first_line(exc)})"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a state dict of tensors")
    return state


def foreign_checkpoint_error(path: Path) -> CheckpointError:
    """The one-line error for a foreign checkpoint where vsparagon needs one of its own (``model.init``).

    It names the architecture spandrel detects, when spandrel is installed and recognises the file.
    """
    own = "vsparagon trains and fine-tunes (model.init) its own architectures only (paragonsr)"
    try:
        found = load_foreign(path)
    except (CheckpointError, MissingDependencyError) as exc:
        return CheckpointError(f"{path}: not a vsparagon checkpoint; {own} ({exc})")
    return CheckpointError(
        f"{path}: spandrel detects architecture {found.architecture!r} ({found.name}); not a vsparagon "
        f"checkpoint: {own}. It runs with core.paragon.Upscale(model=...) and exports with paragon export"
    )


__all__ = [
    "ForeignModel",
    "ForeignModule",
    "foreign_checkpoint_error",
    "import_spandrel",
    "load_foreign",
    "read_state_dict",
]
