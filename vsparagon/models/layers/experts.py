"""Per-pixel routing over a mixture of experts, computed densely so it exports as one graph.

Every expert runs on every pixel and the outputs are summed with the router's weights. With
``top_k`` the weights are a softmax over each pixel's k largest logits and exactly 0 elsewhere;
the selection is made with tensor ops (``topk`` + ``scatter``), so a traced/exported graph routes
each input afresh instead of freezing the route of the trace input.

Auxiliary losses (recorded in training forwards, see :mod:`vsparagon.models.auxiliary`):

* ``load_balance``: ``E * sum_e f_e * P_e`` (the Switch Transformer form), with ``f_e`` the
  share of top-k slots expert ``e`` received and ``P_e`` its mean softmax probability; 1 when
  balanced, up to E when one expert takes everything.
* ``router_entropy``: ``log E - H(mean probability)``, 0 when the experts are used equally on
  average and ``log E`` when the router has collapsed onto one; it pushes against collapse while
  leaving each pixel free to choose decisively.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from vsparagon.models.auxiliary import AuxiliarySource


class Router(nn.Module):
    """Per-pixel expert weights from features (and an optional global context vector).

    ``logits = conv1x1(features) + linear(context)``, divided by ``temperature``; the weights are
    their softmax (``top_k=None``) or the softmax over the top ``top_k`` with the rest exactly 0.
    Either way they sum to 1 per pixel.
    """

    def __init__(
        self, dim: int, experts: int, *, top_k: int | None, temperature: float = 1.0, context_dim: int = 0
    ) -> None:
        super().__init__()
        if experts < 1:
            raise ValueError(f"a router needs at least one expert, got {experts}")
        if top_k is not None and not 1 <= top_k <= experts:
            raise ValueError(f"top_k={top_k} must be between 1 and the {experts} experts (or None for all)")
        if not temperature > 0:
            raise ValueError(f"temperature={temperature} must be positive")
        self.experts, self.top_k, self.temperature = experts, top_k, float(temperature)
        self.proj = nn.Conv2d(dim, experts, 1)
        self.context = nn.Linear(context_dim, experts, bias=False) if context_dim else None
        # Start near uniform routing: the experts all get gradients from the first step.
        for p in self.proj.parameters():
            nn.init.normal_(p, std=0.01)

    def logits(self, features: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, dim, H, W)`` (+ ``(B, context_dim)``) -> ``(B, E, H, W)`` tempered logits."""
        logits = self.proj(features)
        if self.context is not None:
            if context is None:
                raise ValueError("this router was built with context_dim > 0; pass its context vector")
            logits = logits + self.context(context)[:, :, None, None]
        return logits / self.temperature

    def forward(self, features: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, E, H, W)`` weights summing to 1 over E at every pixel."""
        return route(self.logits(features, context), self.top_k)


def route(logits: torch.Tensor, top_k: int | None) -> torch.Tensor:
    """Softmax of ``(B, E, H, W)`` logits over E, restricted to each pixel's ``top_k`` largest."""
    if top_k is None or top_k >= logits.shape[1]:
        return torch.softmax(logits, dim=1)
    index = logits.topk(top_k, dim=1).indices
    keep = torch.zeros_like(logits).scatter(1, index, 1.0)
    # exp(l - max) is at most 1 (finite in fp16); the dropped experts are multiplied by an exact 0.
    top = logits.max(dim=1, keepdim=True).values
    mass = torch.exp(logits - top) * keep
    return mass / mass.sum(dim=1, keepdim=True)


class MixtureOfExperts(AuxiliarySource):
    """``sum_e w_e * expert_e(*inputs)`` with per-pixel weights from a :class:`Router`.

    Every expert takes the same positional inputs and returns the same ``(B, C, H, W)`` shape;
    the router reads ``routing`` (default: the first input) and the optional ``context`` vector.
    """

    def __init__(
        self,
        experts: Sequence[nn.Module],
        router: Router,
        *,
        balance_weight: float = 0.01,
        entropy_weight: float = 0.01,
    ) -> None:
        super().__init__()
        if len(experts) != router.experts:
            raise ValueError(f"{len(experts)} experts but the router weighs {router.experts}; build them alike")
        self.experts = nn.ModuleList(experts)
        self.router = router
        self.balance_weight, self.entropy_weight = float(balance_weight), float(entropy_weight)
        self.last_weights: torch.Tensor | None = None
        """(B, E, H, W) routing weights of the last forward, detached (for inspection and tests)."""

    def forward(
        self, *inputs: torch.Tensor, routing: torch.Tensor | None = None, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        logits = self.router.logits(inputs[0] if routing is None else routing, context)
        weights = route(logits, self.router.top_k)  # (B, E, H, W)
        out = weights[:, 0:1] * self.experts[0](*inputs)
        for e in range(1, len(self.experts)):
            out = out + weights[:, e : e + 1] * self.experts[e](*inputs)
        self.last_weights = weights.detach()
        if self.training:
            self._record(logits, weights)
        return out

    def _record(self, logits: torch.Tensor, weights: torch.Tensor) -> None:
        experts = weights.shape[1]
        # The losses are averages over every token: taken in float32 whatever the network runs in.
        probs = torch.softmax(logits.float(), dim=1).mean(dim=(0, 2, 3))  # (E,) differentiable
        if self.router.top_k is None:  # every expert takes every token: its share is its weight
            share = weights.float().mean(dim=(0, 2, 3)).detach()
        else:
            chosen = (weights > 0).float().mean(dim=(0, 2, 3)).detach()  # (E,) slots per token
            share = chosen / chosen.sum()
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum()
        self.last_losses = {
            "load_balance": self.balance_weight * experts * (share * probs).sum(),
            "router_entropy": self.entropy_weight * (math.log(experts) - entropy),
        }
        self.last_usage = share


__all__ = ["MixtureOfExperts", "Router", "route"]
