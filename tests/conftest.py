"""Shared helpers for the test suite."""

from __future__ import annotations

import pytest
import torch

from vsparagon.models import ParagonSR


def randomize_(model: ParagonSR, seed: int = 0) -> ParagonSR:
    """Give every parameter a random value of realistic size, in place.

    Fresh models have tiny layer scales and a near-zero last conv, so their output
    is almost the nearest-neighbour skip and hides mistakes in the body. These
    weights make the body contribute O(1) to the output while keeping the output
    O(1) for every depth, so absolute tolerances mean the same for tiny and xl.
    """
    gen = torch.Generator().manual_seed(seed)
    depth = model.cfg.num_groups * model.cfg.blocks_per_group
    scale = 0.06 / depth**0.5
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layer_scale"):
                p.copy_(torch.empty(p.shape).uniform_(0.5 * scale, 1.5 * scale, generator=gen))
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.01)
            else:
                std = 0.5 / p[0].numel() ** 0.5
                if ".tail." in name:  # group tails compound across groups
                    std /= model.cfg.num_groups
                p.copy_(torch.randn(p.shape, generator=gen) * std)
    return model


@pytest.fixture
def rng() -> torch.Generator:
    """A seeded torch generator."""
    return torch.Generator().manual_seed(1234)
