"""Auxiliary training signals a model's blocks produce in a forward pass (router losses, expert usage).

A block that routes tokens (a mixture of experts) subclasses :class:`AuxiliarySource`: during a
training forward it records its losses and how often each expert was used; the training loop
collects them from the whole model with :func:`auxiliary_losses` and :func:`expert_usage` and adds
the losses to the objective by itself. Models without such blocks give empty results.
"""

from __future__ import annotations

import torch
from torch import nn


class AuxiliarySource(nn.Module):
    """A block that records auxiliary losses and expert usage in each forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.last_losses: dict[str, torch.Tensor] = {}
        """Loss name -> weighted scalar from the last forward (already multiplied by its weight)."""
        self.last_usage: torch.Tensor | None = None
        """(E,) share of tokens each expert received in the last forward (sums to 1), detached."""


def auxiliary_losses(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every auxiliary loss of ``model``'s last forward, summed by name over its blocks."""
    total: dict[str, torch.Tensor] = {}
    for module in model.modules():
        if isinstance(module, AuxiliarySource):
            for name, value in module.last_losses.items():
                total[name] = total[name] + value if name in total else value
    return total


def expert_usage(model: nn.Module) -> dict[str, list[float]]:
    """Block name -> the share of tokens each of its experts received in the last forward."""
    return {
        name: [float(v) for v in module.last_usage]
        for name, module in model.named_modules()
        if isinstance(module, AuxiliarySource) and module.last_usage is not None
    }


__all__ = ["AuxiliarySource", "auxiliary_losses", "expert_usage"]
