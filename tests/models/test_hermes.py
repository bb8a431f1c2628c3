"""HERMES-IR/SR (seed 004): the seed's invariants, its ablations, checkpoints and the anti-ringing loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vsparagon import models
from vsparagon.catalogue.descriptor import UNKNOWN_RADIUS
from vsparagon.errors import CheckpointError, ConfigError
from vsparagon.models.auxiliary import auxiliary_losses, expert_usage
from vsparagon.models.hermes import Hermes, HermesConfig
from vsparagon.models.hermes.blocks import GatedDepthwiseFFN
from vsparagon.models.hermes.conditioning import DegradationToken, KernelPrior
from vsparagon.models.hermes.experts import DeblurExpert, GenerativeExpert, StructureExpert, TextureExpert
from vsparagon.models.hermes.fusion_blocks import FusionBlock
from vsparagon.models.hermes.losses import anti_ringing_loss
from vsparagon.models.hermes.multiscale import MSGBlock
from vsparagon.models.hermes.streams import GlobalBlock, PartialLargeKernelBlock
from vsparagon.models.layers.experts import MixtureOfExperts
from vsparagon.models.layers.frequency import FrequencySplit
from vsparagon.models.layers.reparam import Reparameterizable
from vsparagon.models.layers.selective_scan import ScanCore, SelectiveScan2d

SMALL = {"dim": 16, "heads": 2, "window": 4, "token_dim": 8, "kernel_dim": 4, "large_kernel": 7}


def perturb_(model: nn.Module, seed: int = 0, *, router_std: float = 1.0) -> nn.Module:
    """Move every parameter off its initial value (zero-initialised gates included) and spread the routes."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
        for m in model.modules():
            if isinstance(m, MixtureOfExperts):
                m.router.proj.weight.normal_(0.0, router_std, generator=gen)
    return model


def centre_router_(model: Hermes, *pictures: torch.Tensor) -> None:
    """Shift the router's bias so that no expert wins on every pixel of ``pictures``.

    Random weights give each logit a large per-image offset; without it the routes follow the content.
    """
    moe = model.experts
    assert isinstance(moe, MixtureOfExperts)
    seen: list[torch.Tensor] = []
    handle = moe.register_forward_hook(
        lambda mod, args, kwargs, out: seen.append(moe.router.logits(kwargs["routing"], kwargs["context"])),
        with_kwargs=True,
    )
    with torch.no_grad():
        for picture in pictures:
            model(picture)
        handle.remove()
        assert moe.router.proj.bias is not None
        moe.router.proj.bias.sub_(torch.cat(seen, dim=2).mean(dim=(0, 2, 3)) * moe.router.temperature)


def small(scale: int = 2, seed: int = 0, **options: object) -> Hermes:
    """A small HERMES, the same whatever ran before (its initial weights come from ``seed``)."""
    cfg = HermesConfig(**{**SMALL, **options, "scale": scale})  # type: ignore[arg-type]
    torch.manual_seed(seed)
    return perturb_(Hermes(cfg), seed)  # type: ignore[return-value]


def _image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


# --- building ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 4])
def test_the_tiny_preset_builds_and_upscales(scale: int) -> None:
    model = models.create("hermes_tiny", scale=scale)
    assert isinstance(model, Hermes)
    assert model.variant == "hermes_tiny"
    assert model.cfg.dim == 32
    assert model.cfg.trunk_stride == 4
    with torch.no_grad():
        out = model.eval()(_image(37, 53))
    assert out.shape == (1, 3, 37 * scale, 53 * scale)
    assert torch.isfinite(out).all()


def test_the_descriptor_says_global_context() -> None:
    descriptor = models.describe(models.create("hermes_tiny", scale=2))
    assert descriptor.arch == "hermes"
    assert descriptor.global_context is True
    assert descriptor.receptive_radius == UNKNOWN_RADIUS
    assert descriptor.multiple_of == 1
    assert descriptor.config["use_moe"] is True


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"heads": 3}, "heads=3"),
        ({"top_k": 5}, "top_k=5"),
        ({"top_k": 4, "use_generative": False}, "top_k=4"),
        ({"trunk_stride": 3}, "trunk_stride=3"),
        ({"large_kernel": 8}, "large_kernel=8"),
        ({"out_channels": 1}, "out_channels=1"),
        ({"colour": 1}, "unknown hermes config fields"),
    ],
)
def test_bad_settings_fail_naming_the_value(options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        models.create("hermes_tiny", scale=2, **options)


def test_an_unsupported_scale_is_refused() -> None:
    with pytest.raises(ConfigError, match="3"):
        models.create("hermes_tiny", scale=3)


# --- shapes ------------------------------------------------------------------------------------


def test_every_block_keeps_the_shape() -> None:
    torch.manual_seed(0)
    c, ck, cg = 8, 4, 6
    x = torch.rand(2, 3, 20, 28)
    L, G, k, t = (torch.randn(2, n, 10, 14) for n in (c, c, ck, c))
    g = torch.randn(2, cg)
    assert KernelPrior(3, ck, stride=2)(x).shape == (2, ck, 10, 14)
    assert DegradationToken(ck, c, cg)(k, L).shape == (2, cg)
    assert PartialLargeKernelBlock(c, kernel_dim=ck, large_kernel=7)(L, k).shape == L.shape
    for use_ssm in (True, False):
        assert GlobalBlock(c, state=4, use_ssm=use_ssm, large_kernel=7)(G).shape == G.shape
    low, high = FrequencySplit(3)(x)
    assert low.shape == high.shape == x.shape
    for shift in (False, True):
        out_l, out_g = FusionBlock(c, heads=2, window=4, shift=shift)(L, G)
        assert out_l.shape == out_g.shape == L.shape
    assert GatedDepthwiseFFN(c)(L).shape == L.shape
    experts = [
        TextureExpert(c, heads=2, window=4),
        StructureExpert(c, state=4, use_ssm=True, large_kernel=7),
        DeblurExpert(c, kernel_dim=ck),
        GenerativeExpert(c, token_dim=cg, noise=True),
    ]
    for expert in experts:
        assert expert(L, G, k, t, g).shape == L.shape
    for levels in (1, 2):
        assert MSGBlock(c, levels=levels)(L[..., :8, :12]).shape == (2, c, 8, 12)


@pytest.mark.parametrize(("h", "w"), [(37, 53), (5, 3), (1, 1), (24, 40)])
def test_sizes_not_divisible_by_the_window_or_the_levels_work(h: int, w: int) -> None:
    model = small(scale=2, trunk_stride=2, msg_levels=2).eval()
    assert model.multiple == 8
    with torch.no_grad():
        out = model(_image(h, w))
    assert out.shape == (1, 3, 2 * h, 2 * w)
    assert torch.isfinite(out).all()


def test_the_inside_padding_is_cropped_from_the_output() -> None:
    # The output of a picture of odd size is the top-left corner of the output of that picture
    # padded by edge replication, exactly what the model does inside.
    model = small(scale=2, trunk_stride=2).eval()
    x = _image(13, 11)
    assert model.multiple == 4
    padded = nn.functional.pad(x, (0, 1, 0, 3), mode="replicate")  # 16 x 12: already a multiple, not padded again
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(padded)[..., :26, :22])


# --- dtypes ------------------------------------------------------------------------------------


def test_the_scan_runs_in_float32_inside_a_bfloat16_network() -> None:
    model = small(scale=2, trunk_stride=2).to(torch.bfloat16).eval()
    seen: list[torch.dtype] = []
    block_dtypes: list[torch.dtype] = []
    for m in model.modules():
        if isinstance(m, ScanCore):
            m.register_forward_hook(lambda mod, args, out: seen.extend([args[0].dtype, out.dtype]))
        if isinstance(m, SelectiveScan2d):
            m.register_forward_hook(lambda mod, args, out: block_dtypes.append(out.dtype))
    with torch.no_grad():
        out = model(_image(12, 20).to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    assert len(seen) >= 4  # global stream and structure expert, two directions each
    assert set(seen) == {torch.float32}
    assert set(block_dtypes) == {torch.bfloat16}  # cast back explicitly: no float32 leaks out


# --- routing -----------------------------------------------------------------------------------


def test_top2_routing_sums_to_one_with_exactly_two_experts_per_pixel() -> None:
    model = small(scale=2, trunk_stride=2)
    centre_router_(model, _image(32, 40))
    model.train()(_image(32, 40))
    moe = model.experts
    assert isinstance(moe, MixtureOfExperts)
    weights = moe.last_weights
    assert weights is not None
    assert weights.shape == (1, 4, 16, 20)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(1, 16, 20))
    assert ((weights > 0).sum(dim=1) == 2).all()
    pairs = {tuple(v) for v in (weights > 0).permute(0, 2, 3, 1).reshape(-1, 4).tolist()}
    assert len(pairs) > 1  # the pixels are not all routed alike


def test_training_forwards_record_the_router_losses_and_usage() -> None:
    model = small(scale=2, trunk_stride=2).train()
    out = model(_image(16, 16))
    losses = auxiliary_losses(model)
    assert set(losses) == {"load_balance", "router_entropy"}
    (usage,) = expert_usage(model).values()
    assert len(usage) == 4
    assert sum(usage) == pytest.approx(1.0)
    (out.mean() + sum(losses.values())).backward()
    moe = model.experts
    assert isinstance(moe, MixtureOfExperts)
    assert moe.router.proj.weight.grad is not None
    assert moe.router.proj.weight.grad.abs().sum() > 0


# --- fusion and determinism --------------------------------------------------------------------


def test_every_reparameterizable_part_fuses_exactly() -> None:
    model = small(scale=2, generative_noise=False).train()
    parts = [m for m in model.modules() if isinstance(m, Reparameterizable)]
    assert len(parts) >= 2 + model.cfg.trunk_blocks  # shallow, head, trunk, the stream's large kernel
    for part in parts:
        x = torch.randn(2, part.in_channels, 9, 11)  # type: ignore[arg-type]
        with torch.no_grad():
            torch.testing.assert_close(part.fuse()(x), part(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("scale", [2, 4])
def test_the_fused_model_equals_the_training_form(scale: int) -> None:
    model = small(scale=scale, generative_noise=False).train()
    x = _image(19, 23, seed=3)
    with torch.no_grad():
        unfused = model(x)
        fused_model = models.fuse(model)
        fused = fused_model(x)
    assert models.is_fused(fused_model)
    assert (fused - unfused).abs().max() < 1e-5 * max(1.0, float(unfused.abs().max()))


def test_evaluation_is_deterministic_and_training_noise_is_not() -> None:
    model = small(scale=2, trunk_stride=2)
    moe = model.experts
    assert isinstance(moe, MixtureOfExperts)
    with torch.no_grad():
        moe.router.proj.bias[3] += 100.0  # the generative expert is always among the two chosen
    x = _image(16, 24)
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(x), model(x))
        model.train()
        assert not torch.equal(model(x), model(x))  # the generative expert's noise
    quiet = small(scale=2, trunk_stride=2, generative_noise=False).train()
    with torch.no_grad():
        assert torch.equal(quiet(x), quiet(x))


# --- ablations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("switch", "absent"),
    [("use_ssm", SelectiveScan2d), ("use_moe", MixtureOfExperts), ("use_frequency", FrequencySplit)],
)
def test_each_ablation_removes_its_part_and_still_runs(switch: str, absent: type[nn.Module]) -> None:
    full, ablated = small(scale=2), small(scale=2, **{switch: False})
    assert any(isinstance(m, absent) for m in full.modules())
    assert not any(isinstance(m, absent) for m in ablated.modules())
    with torch.no_grad():
        assert ablated.eval()(_image(13, 17)).shape == (1, 3, 26, 34)


def test_without_the_generative_expert_three_experts_remain() -> None:
    model = small(scale=2, use_generative=False)
    moe = model.experts
    assert isinstance(moe, MixtureOfExperts)
    assert len(moe.experts) == 3
    assert not any(isinstance(m, GenerativeExpert) for m in model.modules())


# --- checkpoints -------------------------------------------------------------------------------


@pytest.mark.parametrize("fused", [False, True])
def test_checkpoints_round_trip(tmp_path, fused: bool) -> None:
    model = perturb_(models.create("hermes_tiny", scale=4, generative_noise=False))
    if fused:
        model = models.fuse(model)
    path = tmp_path / "hermes.safetensors"
    descriptor = models.save(model, path)
    assert descriptor.fused is fused
    loaded = models.load(path, arch="hermes")
    assert isinstance(loaded, Hermes)
    assert loaded.cfg == model.cfg
    x = _image(11, 9)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), model.eval()(x))
    with pytest.raises(CheckpointError, match="hermes"):
        models.load(path, arch="paragonsr")


# --- anti-ringing loss -------------------------------------------------------------------------


def test_the_anti_ringing_loss_is_zero_within_the_local_range_and_grows_with_overshoot() -> None:
    edge = torch.zeros(1, 1, 16, 16)
    edge[..., 8:] = 1.0
    blurred = nn.functional.avg_pool2d(edge, 3, stride=1, padding=1, count_include_pad=False)
    assert anti_ringing_loss(edge, edge) == 0
    assert anti_ringing_loss(blurred, edge) == 0  # a blur never leaves the range
    halo = edge.clone()
    halo[..., 6] = -0.2  # undershoot beside the edge
    halo[..., 9] = 1.3  # overshoot
    small_halo = edge.clone()
    small_halo[..., 9] = 1.1
    assert anti_ringing_loss(halo, edge) > anti_ringing_loss(small_halo, edge) > 0
    assert anti_ringing_loss(halo, edge).item() == pytest.approx((0.2 * 16 + 0.3 * 16) / 256)


def test_the_anti_ringing_loss_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="same shape"):
        anti_ringing_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))
    with pytest.raises(ValueError, match="window=4"):
        anti_ringing_loss(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), window=4)
