"""One verb for reparameterization: :func:`fuse` turns a training-form model into its inference form."""

from __future__ import annotations

import copy

import torch
from torch import nn

from vsparagon.models.layers.reparam import Reparameterizable, RepConv2d


def _fuse_children(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, Reparameterizable):
            setattr(module, name, child.fuse())
        else:
            _fuse_children(child)


def fuse(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Return the permanent inference form of ``model``.

    Every :class:`~vsparagon.models.layers.reparam.Reparameterizable` block (a :class:`RepConv2d`,
    or an architecture's own) is replaced by the inference form it equals.
    The result is in eval mode. Fusing an already fused model changes nothing.

    Args:
        model: a model in training or inference form.
        inplace: modify ``model`` itself instead of a deep copy.
    """
    target = model if inplace else copy.deepcopy(model)
    _fuse_children(target)
    return target.eval()


def is_fused(model: nn.Module) -> bool:
    """True when no reparameterizable block is left in ``model``."""
    return not any(isinstance(m, Reparameterizable) for m in model.modules())


@torch.no_grad()
def load_fused_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load the state of a fused model into ``model``'s training form (the inverse of :func:`fuse`).

    Each :class:`RepConv2d` named ``N`` takes ``N.weight`` / ``N.bias`` through
    :meth:`RepConv2d.load_fused`; every other tensor is copied by name. Afterwards
    ``fuse(model)`` computes what the fused model did, so training resumes from it.

    Raises:
        KeyError / ValueError: when ``state`` is not the fused form of this architecture.
    """
    reps = {name: m for name, m in model.named_modules() if isinstance(m, RepConv2d)}
    for name, rep in reps.items():
        rep.load_fused(state[f"{name}.weight"], state[f"{name}.bias"])
    plain = {k: v for k, v in state.items() if k.rpartition(".")[0] not in reps}
    missing = sorted(k for k in model.state_dict() if not _inside(k, reps) and k not in plain)
    if missing:
        raise KeyError(f"the fused state lacks {', '.join(missing[:3])}")
    model.load_state_dict(plain, strict=False)


def _inside(key: str, reps: dict[str, RepConv2d]) -> bool:
    return any(key.startswith(name + ".") for name in reps)
