"""Checkpoints: safetensors weights plus the model descriptor in the file's metadata.

A file alone is enough to rebuild its model: the descriptor records the
architecture, variant, scale, every hyperparameter and whether the weights are
in fused (inference) or training form.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from vsparagon._files import atomic_write
from vsparagon.catalogue.descriptor import METADATA_KEY, ModelDescriptor
from vsparagon.catalogue.files import is_foreign_checkpoint, read_safetensors_descriptor, safetensors_metadata
from vsparagon.errors import CheckpointError, ConfigError
from vsparagon.models.fusion import fuse
from vsparagon.models.registry import ENTRIES, config_from_dict, describe, entry_of

#: Metadata key of the SHA-256 over all tensors (names, dtypes, shapes, bytes).
DIGEST_KEY = "vsparagon_sha256"


def save(model: nn.Module, path: str | os.PathLike[str]) -> ModelDescriptor:
    """Write ``model`` (training or fused form) to a safetensors file, atomically.

    Returns:
        The descriptor stored in the file's metadata.
    """
    entry_of(model)  # a model of a registered architecture, or TypeError
    target = Path(path)
    if not target.parent.is_dir():
        raise CheckpointError(f"{target}: folder {target.parent} does not exist")
    descriptor = describe(model)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    metadata = {METADATA_KEY: descriptor.to_json(), DIGEST_KEY: tensor_digest(tensors)}
    atomic_write(target, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return descriptor


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and raw bytes of ``tensors``, in name order."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        tensor = tensors[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def read_descriptor(path: str | os.PathLike[str]) -> ModelDescriptor:
    """Read only the descriptor of a checkpoint (cheap: the weights are not loaded; no torch needed).

    Raises:
        CheckpointError: also for another project's checkpoint, naming the architecture spandrel detects.
    """
    source = Path(path)
    if source.is_file() and is_foreign_checkpoint(source):
        from vsparagon.models.foreign import foreign_checkpoint_error

        raise foreign_checkpoint_error(source)
    descriptor = read_safetensors_descriptor(source)
    if descriptor.arch not in ENTRIES:
        raise CheckpointError(
            f"{source}: architecture {descriptor.arch!r} is not supported (expected one of {', '.join(ENTRIES)})"
        )
    return descriptor


def load(
    path: str | os.PathLike[str], *, fused: bool | None = None, device: str = "cpu", arch: str | None = None
) -> nn.Module:
    """Rebuild a model from a checkpoint written by :func:`save`.

    Args:
        path: the ``.safetensors`` file.
        fused: ``True`` returns the inference form (fusing a training-form file),
            ``None`` keeps the form stored in the file. A fused file cannot be
            loaded with ``fused=False``.
        device: where to put the weights.
        arch: the architecture the caller expects (None: any); a checkpoint of another is refused.

    Raises:
        CheckpointError: naming the file, when it is missing, unreadable, foreign,
            or its tensors do not match its metadata.
    """
    source = Path(path)
    descriptor = read_descriptor(source)
    if arch is not None and descriptor.arch != arch:
        raise CheckpointError(
            f"{source}: holds a {descriptor.arch} model ({descriptor.variant}), not a {arch} one; "
            f"load it as {descriptor.arch} (e.g. variant {descriptor.variant!r}) or pick a {arch} checkpoint"
        )
    try:
        cfg = config_from_dict(dict(descriptor.config), source=str(source), arch=descriptor.arch)
    except ConfigError as exc:
        raise CheckpointError(str(exc)) from None
    if cfg.scale != descriptor.scale:
        raise CheckpointError(
            f"{source}: metadata disagrees with itself (scale {descriptor.scale} vs config scale {cfg.scale})"
        )
    if descriptor.fused and fused is False:
        raise CheckpointError(
            f"{source}: holds a fused (inference) model, which cannot be turned back into the "
            "training form; load the training checkpoint instead, or pass fused=True/None"
        )
    model = ENTRIES[descriptor.arch].module(cfg, variant=descriptor.variant)
    if descriptor.fused:
        model = fuse(model, inplace=True)
    try:
        with safe_open(str(source), framework="pt", device=device) as handle:
            state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{source}: could not read the tensors ({_first_line(exc)}); the file is corrupted"
        ) from None
    _check_state(model, state, source)
    if safetensors_metadata(source).get(DIGEST_KEY) != tensor_digest(state):
        raise CheckpointError(
            f"{source}: the weights fail their checksum; the file is corrupted (re-download or re-export it)"
        )
    model.load_state_dict(state, strict=True)
    model.to(device)
    if fused and not descriptor.fused:
        model = fuse(model, inplace=True)
    return model.eval() if descriptor.fused or fused else model


def _check_state(model: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: tensors do not match the metadata ({_describe_keys(missing, 'missing')}"
            f"{'; ' if missing and unexpected else ''}{_describe_keys(unexpected, 'unexpected')}); "
            "the file was edited or written by an incompatible tool"
        )
    for key, ref in expected.items():
        if tuple(state[key].shape) != tuple(ref.shape):
            raise CheckpointError(
                f"{source}: tensor {key!r} has shape {tuple(state[key].shape)}, the metadata implies "
                f"{tuple(ref.shape)}; the file was edited or written by an incompatible tool"
            )
        if not state[key].is_floating_point():
            raise CheckpointError(f"{source}: tensor {key!r} has non-float dtype {state[key].dtype}")


def _describe_keys(keys: list[str], what: str) -> str:
    if not keys:
        return ""
    shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
    return f"{len(keys)} {what}: {shown}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
