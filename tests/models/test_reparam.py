"""Every kind of reparameterizable block fuses exactly, and eval mode runs the fused conv."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vsparagon.models import fuse, is_fused
from vsparagon.models.layers.reparam import RepConv2d

CASES = {
    "dense 3x3 + 1x1": dict(in_channels=8, out_channels=12, kernel_size=3, aux_kernels=[1]),
    "dense + identity + expand + scale": dict(
        in_channels=8, out_channels=8, kernel_size=3, aux_kernels=[1], identity=True, expand=1, layer_scale=0.3
    ),
    "depthwise square + identity": dict(
        in_channels=6, out_channels=6, kernel_size=3, groups=6, aux_kernels=[1], identity=True
    ),
    "depthwise horizontal band": dict(
        in_channels=4, out_channels=4, kernel_size=(1, 11), groups=4, aux_kernels=[(1, 3)], identity=True
    ),
    "depthwise vertical band": dict(
        in_channels=4, out_channels=4, kernel_size=(11, 1), groups=4, aux_kernels=[(3, 1)], identity=True
    ),
    "grouped, two aux kernels": dict(in_channels=8, out_channels=8, kernel_size=5, groups=2, aux_kernels=[3, 1]),
    "1x1 with layer scale only": dict(in_channels=16, out_channels=8, kernel_size=1, layer_scale=0.5),
}


def _randomized(kwargs: dict, seed: int = 0) -> RepConv2d:
    torch.manual_seed(seed)
    block = RepConv2d(**kwargs)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return block


@pytest.mark.parametrize("name", CASES)
def test_fused_conv_equals_branch_sum_fp32(name, rng):
    block = _randomized(CASES[name])
    x = torch.randn(2, block.in_channels, 17, 23, generator=rng)
    with torch.no_grad():
        branches = block.train()(x)
        conv = block.fuse()
        assert isinstance(conv, nn.Conv2d)
        fused = conv(x)
    assert fused.shape == branches.shape
    # float32 rounding grows with the values summed (outputs here reach about 5): a few ulps of the largest
    scale = max(1.0, branches.abs().max().item())
    assert (fused - branches).abs().max().item() < 1e-5 * scale


@pytest.mark.parametrize("name", CASES)
def test_fused_conv_equals_branch_sum_fp16(name, rng):
    block = _randomized(CASES[name])
    x = torch.rand(1, block.in_channels, 16, 16, generator=rng)
    with torch.no_grad():
        reference = block.train()(x)
        fused = block.fuse().half()(x.half()).float()
    assert torch.isfinite(fused).all()
    # fp16 rounding of weights and products; outputs here are O(1..10)
    assert (fused - reference).abs().max().item() < 2e-2 * max(1.0, reference.abs().max().item())


@pytest.mark.parametrize("name", CASES)
def test_eval_mode_runs_the_fused_computation(name, rng):
    block = _randomized(CASES[name])
    x = torch.randn(1, block.in_channels, 9, 9, generator=rng)
    with torch.no_grad():
        in_eval = block.eval()(x)
        fused = block.fuse()(x)
    assert torch.equal(in_eval, fused)  # the very same single conv, bit for bit


def test_eval_cache_follows_parameter_updates(rng):
    block = _randomized(CASES["dense + identity + expand + scale"]).eval()
    x = torch.randn(1, 8, 8, 8, generator=rng)
    with torch.no_grad():
        before = block(x)
        block.main.weight.add_(1.0)  # an optimizer step or load_state_dict does the same
        after = block(x)
        expected = block.train()(x)
    assert not torch.allclose(before, after)
    assert (after - expected).abs().max().item() < 1e-4


def test_eval_mode_keeps_gradients(rng):
    block = _randomized(CASES["dense 3x3 + 1x1"]).eval()
    x = torch.randn(1, 8, 6, 6, generator=rng)
    block(x).sum().backward()
    assert block.aux[0].weight.grad is not None
    assert block.aux[0].weight.grad.abs().sum() > 0


def test_fusing_twice_is_a_no_op():
    model = nn.Sequential(
        _randomized(CASES["dense 3x3 + 1x1"]), nn.GELU(), _randomized(CASES["grouped, two aux kernels"], 1)
    )
    once = fuse(model)
    twice = fuse(once)
    assert is_fused(once)
    assert is_fused(twice)
    assert not is_fused(model)
    a, b = once.state_dict(), twice.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert fuse(model) is not model  # a copy unless inplace=True


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(in_channels=4, out_channels=4, kernel_size=2), "odd kernel"),
        (dict(in_channels=4, out_channels=4, kernel_size=3, aux_kernels=[5]), "fit inside"),
        (dict(in_channels=4, out_channels=8, kernel_size=3, identity=True), "identity"),
        (dict(in_channels=4, out_channels=4, kernel_size=3, groups=4, expand=1), "expand"),
    ],
)
def test_invalid_block_configs_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RepConv2d(**kwargs)


@pytest.mark.parametrize("name", CASES)
def test_loading_a_fused_kernel_gives_back_the_same_conv(name, rng):
    # load_fused is fuse run backwards: the training form computes the given conv, and
    # every extra branch (still trainable) starts at zero.
    source = _randomized(CASES[name], seed=1)
    fused = source.fuse()
    block = _randomized(CASES[name], seed=2).train()
    block.load_fused(fused.weight.detach(), fused.bias.detach())
    x = torch.randn(2, block.in_channels, 9, 13, generator=rng)
    with torch.no_grad():
        assert torch.allclose(block(x), fused(x), atol=1e-5)
    block.zero_grad()
    block(x).square().mean().backward()
    assert all(conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0 for conv in block.aux)
    with pytest.raises(ValueError, match="does not fit"):
        block.load_fused(fused.weight[:1].detach(), fused.bias[:1].detach())
