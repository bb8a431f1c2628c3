"""Resumable training state in one safetensors file per checkpoint.

Tensors: model, EMA, optimizer moments, discriminator, RNG states. Metadata (JSON):
step, config, optimizer hyperparameters, scheduler and scaler state, Python and
NumPy RNG states. Writes are atomic (temporary file + rename), so a full disk or a
crash while saving leaves the previous checkpoint as it was.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from vsparagon._files import atomic_write
from vsparagon.errors import CheckpointError

STATE_KEY = "vsparagon_train_state"
STATE_VERSION = 1
_NAME = re.compile(r"^state_(\d{7,})\.safetensors$")


@dataclass
class TrainState:
    """Everything needed to continue a run exactly."""

    step: int
    config: dict[str, Any]
    modules: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    """State dicts of plain modules: ``model``, ``ema``, ``disc``."""
    optimizers: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Optimizer state dicts: ``opt``, ``opt_d``."""
    extra: dict[str, Any] = field(default_factory=dict)
    """JSON-able states: schedulers, scaler, best metrics."""
    rng: dict[str, Any] = field(default_factory=dict)


def capture_rng() -> dict[str, Any]:
    """Python, NumPy and PyTorch (CPU and CUDA) generator states."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Undo :func:`capture_rng`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def state_path(folder: Path, step: int) -> Path:
    """``folder/state_0001234.safetensors``."""
    return folder / f"state_{step:07d}.safetensors"


def list_states(folder: Path) -> list[tuple[int, Path]]:
    """Checkpoints in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def save_state(state: TrainState, folder: Path, *, keep_last: int) -> Path:
    """Write ``state`` atomically, then delete all but the newest ``keep_last`` checkpoints.

    Raises:
        CheckpointError: when the file cannot be written (disk full, permissions); the
            checkpoints already there are untouched.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for name, sd in state.modules.items():
        for key, value in sd.items():
            tensors[f"{name}/{key}"] = value.detach().cpu().contiguous()
    optim_meta: dict[str, Any] = {}
    for name, opt_sd in state.optimizers.items():
        plain: dict[str, Any] = {}
        slots_by_param: dict[int, dict[str, Any]] = opt_sd["state"]
        for idx, slots in slots_by_param.items():
            for slot, value in slots.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"{name}/{idx}/{slot}"] = value.detach().cpu().contiguous()
                else:
                    plain[f"{idx}/{slot}"] = value
        optim_meta[name] = {"param_groups": opt_sd["param_groups"], "plain": plain, "ids": sorted(slots_by_param)}
    rng = dict(state.rng)
    tensors["rng/torch"] = rng.pop("torch")
    for i, cuda in enumerate(rng.pop("cuda", [])):
        tensors[f"rng/cuda/{i}"] = cuda
    meta = {
        "version": STATE_VERSION,
        "step": state.step,
        "config": state.config,
        "optimizers": optim_meta,
        "extra": state.extra,
        "rng": rng,
    }
    path = state_path(folder, state.step)
    try:
        atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={STATE_KEY: json.dumps(meta)}))
    except (OSError, SafetensorError) as exc:  # disk full, file too large, permissions
        previous = list_states(folder)
        kept = f"; the previous checkpoint {previous[-1][1]} is intact" if previous else ""
        reason = getattr(exc, "strerror", None) or str(exc).removeprefix("Error while serializing: ")
        raise CheckpointError(f"could not write checkpoint {path} ({reason}){kept}") from None
    for _, old in list_states(folder)[:-keep_last]:
        old.unlink(missing_ok=True)
    return path


def load_state(path: Path) -> TrainState:
    """Read a checkpoint written by :func:`save_state`.

    Raises:
        CheckpointError: naming the file, when it is unreadable or not a training state.
    """
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta_json = (handle.metadata() or {}).get(STATE_KEY)
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: cannot read the training checkpoint ({exc}); resume from an older one"
        ) from None
    if meta_json is None:
        raise CheckpointError(f"{path}: not a vsparagon training checkpoint (a release model cannot be resumed)")
    meta = json.loads(meta_json)
    if meta.get("version") != STATE_VERSION:
        raise CheckpointError(f"{path}: training-state version {meta.get('version')} is not supported")
    modules: dict[str, dict[str, torch.Tensor]] = {}
    optim_tensors: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
    rng = dict(meta["rng"])
    for key, value in tensors.items():
        head, _, rest = key.partition("/")
        if head == "rng":
            if rest == "torch":
                rng["torch"] = value
            else:
                rng.setdefault("cuda", []).append(value)
        elif head in meta["optimizers"]:
            idx, _, slot = rest.partition("/")
            optim_tensors.setdefault(head, {}).setdefault(idx, {})[slot] = value
        else:
            modules.setdefault(head, {})[rest] = value
    optimizers = {}
    for name, info in meta["optimizers"].items():
        state: dict[int, dict[str, Any]] = {
            int(i): dict(optim_tensors.get(name, {}).get(str(i), {})) for i in info["ids"]
        }
        for key, value in info["plain"].items():
            idx, _, slot = key.partition("/")
            state[int(idx)][slot] = value
        optimizers[name] = {"state": state, "param_groups": info["param_groups"]}
    return TrainState(meta["step"], meta["config"], modules, optimizers, meta["extra"], rng)
