"""One verb for reparameterization: :func:`fuse` turns a training-form model into its inference form."""

from __future__ import annotations

import copy

from torch import nn

from vsparagon.models.layers.reparam import RepConv2d


def _fuse_children(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, RepConv2d):
            setattr(module, name, child.fuse())
        else:
            _fuse_children(child)


def fuse(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """Return the permanent inference form of ``model``.

    Every :class:`RepConv2d` is replaced by the single ``nn.Conv2d`` it equals.
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
    return not any(isinstance(m, RepConv2d) for m in model.modules())
