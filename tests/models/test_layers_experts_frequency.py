"""The shared mixture-of-experts and frequency layers: routing sums, top-k sparsity, DCT exactness, export."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import onnx_session
from torch import nn

from vsparagon.models.auxiliary import auxiliary_losses, expert_usage
from vsparagon.models.layers.experts import MixtureOfExperts, Router, route
from vsparagon.models.layers.frequency import BandScale, BlockDCT, FrequencySplit, dct_basis

# --- routing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("top_k", [None, 1, 2, 3])
def test_router_weights_sum_to_one_with_exactly_k_nonzero(top_k: int | None) -> None:
    torch.manual_seed(0)
    router = Router(8, 4, top_k=top_k, temperature=0.5)
    nn.init.normal_(router.proj.weight)  # far from the uniform start, so the routes differ per pixel
    weights = router(torch.randn(2, 8, 7, 9))
    assert weights.shape == (2, 4, 7, 9)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2, 7, 9))
    assert (weights >= 0).all()
    nonzero = (weights > 0).sum(dim=1)
    assert (nonzero == (top_k or 4)).all()
    winners = weights.argmax(dim=1)
    assert len(winners.unique()) > 1  # the pixels do not all pick the same expert


def test_top_k_keeps_the_largest_logits_and_renormalises_their_softmax() -> None:
    logits = torch.tensor([0.0, 3.0, 1.0, 2.0]).view(1, 4, 1, 1)
    weights = route(logits, 2).flatten()
    expected = torch.softmax(torch.tensor([3.0, 2.0]), dim=0)
    torch.testing.assert_close(weights, torch.tensor([0.0, expected[0], 0.0, expected[1]]))
    assert weights[0] == 0
    assert weights[2] == 0


def test_router_with_context_needs_it_and_uses_it() -> None:
    torch.manual_seed(0)
    router = Router(4, 3, top_k=None, context_dim=5)
    features = torch.randn(1, 4, 3, 3)
    with pytest.raises(ValueError, match="context"):
        router(features)
    a = router(features, torch.zeros(1, 5))
    b = router(features, torch.randn(1, 5) * 5)
    assert not torch.allclose(a, b)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"top_k": 0}, "top_k=0"), ({"top_k": 5}, "top_k=5"), ({"top_k": None, "temperature": 0.0}, "temperature")],
)
def test_router_rejects_bad_settings_naming_them(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Router(4, 4, **kwargs)  # type: ignore[arg-type]


class _Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def _mixture(top_k: int | None = 2) -> MixtureOfExperts:
    torch.manual_seed(1)
    router = Router(6, 4, top_k=top_k)
    nn.init.normal_(router.proj.weight)
    return MixtureOfExperts([_Scale(f) for f in (1.0, 2.0, 3.0, 4.0)], router, balance_weight=0.5, entropy_weight=0.25)


def test_mixture_is_the_weighted_sum_of_every_expert() -> None:
    moe = _mixture().train()
    x = torch.randn(2, 6, 5, 7)
    y = moe(x)
    weights = moe.last_weights
    assert weights is not None
    factor = (weights * torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1, 1)).sum(dim=1, keepdim=True)
    torch.testing.assert_close(y, x * factor)


def test_mixture_records_weighted_losses_and_usage_in_training_only() -> None:
    moe = _mixture().train()
    model = nn.Sequential(moe)
    moe(torch.randn(2, 6, 8, 8))
    losses = auxiliary_losses(model)
    assert set(losses) == {"load_balance", "router_entropy"}
    assert 0.5 * 1.0 - 1e-6 <= losses["load_balance"].item() <= 0.5 * 4 + 1e-6
    assert 0.0 <= losses["router_entropy"].item() <= 0.25 * math.log(4) + 1e-6
    losses["load_balance"].backward()
    assert moe.router.proj.weight.grad is not None
    assert moe.router.proj.weight.grad.abs().sum() > 0
    (usage,) = expert_usage(model).values()
    assert len(usage) == 4
    assert abs(sum(usage) - 1.0) < 1e-6
    moe.eval().last_losses = {}
    moe(torch.randn(1, 6, 4, 4))
    assert moe.last_losses == {}


def test_collapsed_routing_costs_more_than_balanced_routing() -> None:
    moe = _mixture(top_k=1).train()
    with torch.no_grad():
        moe.router.proj.weight.zero_()
        moe.router.proj.bias.copy_(torch.tensor([10.0, 0.0, 0.0, 0.0]))
    moe(torch.randn(1, 6, 4, 4))
    collapsed = {k: float(v) for k, v in moe.last_losses.items()}
    assert moe.last_usage is not None
    assert moe.last_usage.tolist() == [1.0, 0.0, 0.0, 0.0]
    with torch.no_grad():
        moe.router.proj.bias.zero_()
    moe(torch.randn(1, 6, 4, 4))
    assert moe.last_losses["router_entropy"] < collapsed["router_entropy"]
    assert collapsed["load_balance"] == pytest.approx(0.5 * 4, rel=1e-3)


def test_the_exported_mixture_routes_each_input_afresh() -> None:
    moe = _mixture().eval()
    session = onnx_session(nn.Sequential(moe), torch.randn(1, 6, 8, 8))
    for seed in range(3):
        x = torch.randn(2, 6, 11, 13, generator=torch.Generator().manual_seed(seed)) * (seed + 1)
        with torch.no_grad():
            expected = moe(x).numpy()
        got = session.run(None, {"input": x.numpy()})[0]
        np.testing.assert_allclose(got, expected, atol=1e-5)


# --- frequency ---------------------------------------------------------------------------------


def test_the_dct_basis_is_orthonormal() -> None:
    basis = dct_basis(8).view(64, 64).double()
    torch.testing.assert_close(basis @ basis.T, torch.eye(64, dtype=torch.float64), atol=1e-6, rtol=0)


@pytest.mark.parametrize(("h", "w"), [(16, 24), (37, 53), (5, 3)])
def test_block_dct_inverts_exactly_at_any_size(h: int, w: int) -> None:
    dct = BlockDCT(3)
    x = torch.rand(2, 3, h, w)
    coefficients = dct(x)
    assert coefficients.shape == (2, 3 * 64, -(-h // 8), -(-w // 8))
    torch.testing.assert_close(dct.inverse(coefficients, h, w), x, atol=1e-5, rtol=0)


def test_a_flat_block_has_only_a_dc_coefficient() -> None:
    coefficients = BlockDCT(1)(torch.full((1, 1, 8, 8), 0.5)).flatten()
    assert coefficients[0] == pytest.approx(0.5 * 8)
    assert coefficients[1:].abs().max() < 1e-6


def test_frequency_split_sums_to_the_input_and_separates_bands() -> None:
    split = FrequencySplit(3, cutoff=3)
    x = torch.rand(1, 3, 37, 53)
    low, high = split(x)
    assert low.shape == high.shape == x.shape
    torch.testing.assert_close(low + high, x, atol=1e-5, rtol=0)
    smooth = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(1, 3, 32, 32)
    board = (torch.arange(32).view(32, 1) + torch.arange(32).view(1, 32)) % 2
    s_low, s_high = split(smooth)
    b_low, b_high = split(board.float().expand(1, 3, 32, 32))
    assert s_high.abs().mean() < 0.1 * s_low.abs().mean()  # a gentle ramp is mostly low frequency
    assert b_high.abs().mean() > 5 * (b_low - 0.5).abs().mean()  # a 1-px checkerboard is all high


def test_band_gains_are_clamped_so_no_band_is_amplified_past_the_bound() -> None:
    scale = BandScale(1, 4, max_gain=1.5)
    with torch.no_grad():
        scale.gain.copy_(torch.tensor([-3.0, 0.5, 1.2, 9.0]))
    out = scale(torch.ones(1, 4, 2, 2))
    assert out[0, :, 0, 0].tolist() == pytest.approx([0.0, 0.5, 1.2, 1.5])
    with pytest.raises(ValueError, match=r"max_gain=0\.5"):
        BandScale(1, 4, max_gain=0.5)
    with pytest.raises(ValueError, match="cutoff=0"):
        FrequencySplit(3, cutoff=0)


def test_the_exported_split_takes_another_odd_size() -> None:
    class Both(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.split = FrequencySplit(3)
            with torch.no_grad():
                self.split.gate.gain.uniform_(0.0, 2.0)  # type: ignore[union-attr]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            low, high = self.split(x)
            return torch.cat([low, high], dim=1)

    module = Both()
    session = onnx_session(module, torch.rand(1, 3, 32, 32))
    x = torch.rand(1, 3, 37, 53)
    with torch.no_grad():
        expected = module(x).numpy()
    np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], expected, atol=1e-5)
