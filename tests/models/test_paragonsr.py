"""Contract tests over every registered ParagonSR variant and scale."""

from __future__ import annotations

import pytest
import torch
from helpers import randomize_

from vsparagon import models
from vsparagon.errors import ConfigError, InputError
from vsparagon.models import ParagonConfig, ParagonSR

# The seed's table (000): feature dim, groups x blocks.
SEED_TABLE = {
    "paragonsr_tiny": (32, 3, 3),
    "paragonsr_xs": (48, 4, 4),
    "paragonsr_s": (64, 6, 6),
    "paragonsr_m": (96, 8, 8),
    "paragonsr_l": (128, 10, 10),
    "paragonsr_xl": (160, 12, 12),
}
VARIANT_SCALES = [(v, s) for v in SEED_TABLE for s in models.SCALES]


def test_variant_table_matches_the_seed():
    assert models.variant_names("paragonsr") == list(SEED_TABLE)
    for name, (dim, groups, blocks) in SEED_TABLE.items():
        model = models.create(name, scale=2)
        assert (model.cfg.dim, model.cfg.num_groups, model.cfg.blocks_per_group) == (dim, groups, blocks)
        assert len(model.groups) == groups
        assert all(len(group.blocks) == blocks for group in model.groups)
        assert model.head.out_channels == dim


@pytest.mark.parametrize(("variant", "scale"), VARIANT_SCALES)
def test_every_variant_builds_runs_and_fuses_exactly(variant, scale):
    model = randomize_(models.create(variant, scale=scale), seed=scale)
    x = torch.rand(1, 3, 13, 17, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        unfused = model.train()(x)
        fused_model = models.fuse(model)
        fused = fused_model(x)
        in_eval = model.eval()(x)
    assert unfused.shape == (1, 3, 13 * scale, 17 * scale)
    assert models.is_fused(fused_model)
    assert not models.is_fused(model)
    # the body really contributes, so the comparison below is not vacuous
    base = torch.nn.functional.interpolate(x, scale_factor=scale, mode="nearest")
    assert (unfused - base).abs().mean().item() > 0.05
    assert (fused - unfused).abs().max().item() < 1e-5
    # model.eval() already runs the fused computation, bit for bit
    assert torch.equal(in_eval, fused)
    assert sum(p.numel() for p in fused_model.parameters()) < sum(p.numel() for p in model.parameters())


def test_fusing_a_fused_model_changes_nothing():
    fused = models.fuse(randomize_(models.create("tiny", scale=2)))
    again = models.fuse(fused)
    a, b = fused.state_dict(), again.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_fuse_leaves_the_training_model_alone():
    model = models.create("tiny", scale=2)
    keys = set(model.state_dict())
    models.fuse(model)
    assert set(model.state_dict()) == keys
    assert model.training


def test_short_and_long_variant_names():
    assert models.create("TINY").variant == "paragonsr_tiny"
    assert models.create("paragonsr_xs", scale=4).cfg.scale == 4


def _footprint(model: ParagonSR, size: int, center: tuple[int, int]) -> torch.Tensor:
    """Boolean (H, W) map of the input pixels that the output block of ``center`` depends on.

    Uses the gradient in float64: far paths are products of many small weights,
    which a finite difference would lose in the rounding of O(1) outputs, but a
    gradient is exactly zero only where there is no path at all.
    """
    model = models.fuse(model).double()
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x.requires_grad_(True)
    s = model.scale
    out = model(x)  # (1, 3, H*s, W*s)
    out[0, :, center[0] * s : (center[0] + 1) * s, center[1] * s : (center[1] + 1) * s].sum().backward()
    assert x.grad is not None
    return x.grad[0].abs().sum(dim=0) > 0  # (H, W)


@pytest.mark.parametrize(
    "cfg",
    [
        ParagonConfig(dim=8, num_groups=2, blocks_per_group=2, band_kernel=5, scale=2),
        ParagonConfig(dim=8, num_groups=1, blocks_per_group=3, band_kernel=7, scale=3),
        ParagonConfig(dim=32, num_groups=3, blocks_per_group=3, scale=2),  # = paragonsr_tiny
    ],
    ids=["2x2-band5-x2", "1x3-band7-x3", "tiny-x2"],
)
def test_receptive_radius_is_exact(cfg):
    """An output pixel depends on exactly the input pixels within the stated radius, no further."""
    model = randomize_(ParagonSR(cfg))
    r = model.receptive_radius
    size = 2 * r + 11
    c = size // 2
    footprint = _footprint(model, size, (c, c))
    rows, cols = torch.nonzero(footprint, as_tuple=True)
    assert rows.min().item() == c - r
    assert rows.max().item() == c + r
    assert cols.min().item() == c - r
    assert cols.max().item() == c + r
    assert models.describe(model).receptive_radius == r


def test_receptive_radius_of_every_variant():
    expected = {"paragonsr_tiny": 60, "paragonsr_xs": 103, "paragonsr_s": 225}
    for name, radius in expected.items():
        assert models.create(name).receptive_radius == radius


def test_translation_equivariance_away_from_borders():
    model = models.fuse(randomize_(models.create("tiny", scale=2))).double()
    x = torch.rand(1, 3, 150, 150, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        full = model(x)
        shifted = model(x[:, :, 3:, 5:])
    r = model.receptive_radius
    # away from every border the output of the crop equals the crop of the output
    a = full[:, :, 2 * (3 + r) : 2 * (150 - r), 2 * (5 + r) : 2 * (150 - r)]
    b = shifted[:, :, 2 * r : 2 * (147 - r), 2 * r : 2 * (145 - r)]
    assert a.shape == b.shape
    assert a.numel() > 0
    assert (a - b).abs().max().item() < 1e-9


# PyTorch's CPU float16 kernels are very slow (xl: minutes); every variant's fp16
# path is checked through ONNX Runtime in tests/export/test_onnx.py instead.
@pytest.mark.parametrize("variant", ["paragonsr_tiny", "paragonsr_xs"])
def test_fp16_inference_does_not_overflow(variant):
    """Half precision stays finite and close to fp32 for inputs in [0, 1], including the extremes."""
    torch.manual_seed(0)
    model = models.fuse(models.create(variant, scale=2))
    gen = torch.Generator().manual_seed(11)
    x = torch.cat([torch.rand(1, 3, 12, 12, generator=gen), torch.zeros(1, 3, 12, 12), torch.ones(1, 3, 12, 12)])
    with torch.no_grad():
        reference = model(x)
        half = model.half()(x.half()).float()
    assert torch.isfinite(half).all()
    assert (half - reference).abs().max().item() < 2e-2


def test_fp16_with_strong_weights_stays_finite():
    model = models.fuse(randomize_(models.create("xs", scale=4)))
    x = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        reference = model(x)
        half = model.half()(x.half()).float()
    assert torch.isfinite(half).all()
    assert (half - reference).abs().max().item() < 2e-2 * max(1.0, reference.abs().max().item())


def test_unknown_variant_lists_the_valid_names():
    with pytest.raises(ConfigError, match=r"unknown variant 'huge'.*tiny, xs, s, m, l, xl"):
        models.create("huge")


@pytest.mark.parametrize("scale", [0, 5, 8, -2, 2.0, "2", True])
def test_unsupported_scale_is_rejected(scale):
    with pytest.raises(ConfigError, match="supported scales: 1, 2, 3, 4"):
        models.create("tiny", scale=scale)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.rand(3, 16, 16), r"4D tensor .* got shape \(3, 16, 16\)"),
        (torch.rand(1, 1, 16, 16), "expects 3 input channels"),
        (torch.rand(1, 4, 16, 16), "expects 3 input channels"),
        (torch.randint(0, 255, (1, 3, 8, 8), dtype=torch.uint8), "floating-point"),
    ],
)
def test_bad_input_tensors_are_rejected(x, message):
    model = models.create("tiny").eval()
    with pytest.raises(InputError, match=message):
        model(x)


def test_a_fused_model_loads_back_into_the_training_form():
    # Training resumes from a shipped (fused) model: same outputs, trainable branches again.
    from vsparagon.models.fusion import load_fused_state

    source = models.create("tiny", 2)
    randomize_(source, seed=3)
    fused = models.fuse(source)
    trainable = models.create("tiny", 2)
    load_fused_state(trainable, fused.state_dict())
    x = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(trainable.train()(x), fused(x), atol=1e-4)
        assert torch.allclose(models.fuse(trainable)(x), fused(x), atol=1e-4)
    with pytest.raises(KeyError):
        load_fused_state(models.create("tiny", 2), {})
