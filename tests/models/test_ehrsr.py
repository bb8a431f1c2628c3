"""EHR-SR (seed 003): every block keeps shapes and dtypes, routing sums to 1, fusion is exact, eval is
deterministic, any size works, and the model builds, round-trips and describes itself through the registry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vsparagon import models
from vsparagon.catalogue.descriptor import UNKNOWN_RADIUS
from vsparagon.errors import ConfigError
from vsparagon.models.auxiliary import auxiliary_losses, expert_usage
from vsparagon.models.ehrsr import FP16_SAFE, EHRSRConfig
from vsparagon.models.ehrsr.arch import EHRSR
from vsparagon.models.ehrsr.common import NoiseInjection
from vsparagon.models.ehrsr.stem import GatedConv, RepGatedStem
from vsparagon.models.ehrsr.trunk import (
    ExpertBlock,
    FrequencyBlock,
    FusedRepMix,
    HybridStage,
    RepMix,
    ScanBlock,
    WindowBlock,
)
from vsparagon.models.ehrsr.unet import Level, NAFBlock
from vsparagon.models.layers.experts import MixtureOfExperts
from vsparagon.models.layers.selective_scan import ScanCore

#: Small and quick, every module present; drop_path/dropout 0 so a training forward is deterministic.
QUIET = {"dim": 8, "trunk_blocks": 2, "heads": 2, "window": 4, "drop_path": 0.0, "dropout": 0.0}


def randomized(model: nn.Module, seed: int = 0, spread: float = 0.1) -> nn.Module:
    """Every parameter moved off its initial value, so zero-initialised branches contribute too."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(spread * torch.randn(p.shape, generator=gen))
    return model


def picture(*size: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(seed))


def quiet(**options) -> EHRSR:
    return models.create("ehrsr_tiny", scale=2, **{**QUIET, **options})  # type: ignore[return-value]


def test_create_the_presets():
    tiny = models.create("ehrsr_tiny", scale=4)
    assert isinstance(tiny, EHRSR)
    assert tiny.variant == "ehrsr_tiny"
    assert tiny.cfg.scale == 4
    with torch.no_grad():
        assert tiny.eval()(picture(12, 9)).shape == (1, 3, 48, 36)
    base = models.create("ehrsr_base", scale=2)
    count = sum(p.numel() for p in base.parameters())
    assert count > 2 * sum(p.numel() for p in tiny.parameters())


@pytest.mark.parametrize(("size", "scale"), [((37, 53), 2), ((33, 70), 4), ((1, 1), 2), ((2, 3), 4)])
def test_any_size_works(size, scale):
    """Odd sizes, sizes no multiple of window * 2**levels (32 here), and sizes below one window."""
    model = randomized(models.create("ehrsr_tiny", scale=scale)).eval()
    with torch.no_grad():
        out = model(picture(*size))
    assert out.shape == (1, 3, size[0] * scale, size[1] * scale)
    assert torch.isfinite(out).all()


def test_every_block_keeps_its_shape_and_dtype():
    """Forward hooks on every block; the model runs in bfloat16 and only the scan cores work in float32."""
    model = randomized(quiet(levels=3, ssm_directions=4)).to(torch.bfloat16).eval()
    blocks = (RepGatedStem, GatedConv, NAFBlock, Level, WindowBlock, ScanBlock, FrequencyBlock, ExpertBlock)
    shaped = (*blocks[1:], HybridStage, RepMix, ScanCore)
    seen: dict[str, int] = {}
    wrong: list[str] = []

    def check(name: str):
        def hook(module, inputs, output):
            kind = type(module).__name__
            seen[kind] = seen.get(kind, 0) + 1
            want = torch.float32 if isinstance(module, ScanCore) else torch.bfloat16
            if output.dtype != want or (isinstance(module, ScanCore) and inputs[0].dtype != want):
                wrong.append(f"{name}: {inputs[0].dtype} -> {output.dtype}")
            if isinstance(module, shaped) and output.shape != inputs[0].shape:
                wrong.append(f"{name}: {tuple(inputs[0].shape)} -> {tuple(output.shape)}")

        return hook

    for name, module in model.named_modules():
        if isinstance(module, (*blocks, HybridStage, RepMix, ScanCore, nn.Conv2d, nn.Linear)):
            module.register_forward_hook(check(name))
    with torch.no_grad():
        out = model(picture(21, 19).to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    assert not wrong, wrong
    assert seen["ScanCore"] == 2 * 4  # 2 stages x 4 directions, all in float32
    assert all(seen.get(b.__name__, 0) > 0 for b in blocks), seen


@pytest.mark.parametrize("top_k", [0, 1, 2])
def test_routing_weights_sum_to_one_per_token(top_k):
    model = randomized(quiet(top_k=top_k, experts=3), spread=0.5).train()
    model(picture(24, 20))
    mixtures = [m for m in model.modules() if isinstance(m, MixtureOfExperts)]
    assert len(mixtures) == 2
    for moe in mixtures:
        weights = moe.last_weights
        assert weights is not None
        assert weights.shape[1] == 3
        torch.testing.assert_close(weights.sum(dim=1), torch.ones_like(weights[:, 0]))
        chosen = (weights > 0).sum(dim=1)
        assert (chosen == (top_k or 3)).all()
    losses = auxiliary_losses(model)
    assert set(losses) == {"load_balance", "router_entropy"}
    assert all(v.requires_grad for v in losses.values())
    usage = expert_usage(model)
    assert len(usage) == 2
    assert all(abs(sum(shares) - 1) < 1e-5 for shares in usage.values())


def test_repmix_fuses_exactly():
    block = randomized(RepMix(8, kernel=7), seed=3).train()
    x = torch.randn(2, 8, 13, 11)
    with torch.no_grad():
        unfused = block(x)
        fused = block.fuse()
        out = fused.eval()(x)
    assert isinstance(fused, FusedRepMix)
    assert (out - unfused).abs().max() < 1e-5


@pytest.mark.parametrize("options", [{}, {"levels": 3, "top_k": 0}, {"use_ssm": False, "use_moe": False}])
def test_the_whole_model_fuses_exactly(options):
    model = randomized(quiet(**options), seed=1).train()  # the training form: every branch separate
    x = picture(19, 26)
    with torch.no_grad():
        unfused = model(x)
        fused = models.fuse(model)
        out = fused(x)
        again = models.fuse(fused)(x)
    assert models.is_fused(fused)
    assert not models.is_fused(model)
    assert models.describe(fused).fused
    assert not any(isinstance(m, RepMix) for m in fused.modules())
    assert (out - unfused).abs().max() < 1e-4
    assert torch.equal(again, out)


def test_eval_is_deterministic_and_noise_only_acts_in_training():
    model = randomized(quiet(noise=True, drop_path=0.2, dropout=0.2), seed=2)
    noises = [m for m in model.modules() if isinstance(m, NoiseInjection)]
    assert len(noises) == 2 + 2 + 2  # encoder levels, trunk stages, decoder levels
    x = picture(17, 23)
    with torch.no_grad():
        first, second = model.eval()(x), model(x)
        train_a, train_b = model.train()(x), model(x)
    assert torch.equal(first, second)
    assert not torch.equal(train_a, train_b)
    without = quiet(noise=False)
    assert not any(isinstance(m, NoiseInjection) for m in without.modules())


def test_ablation_switches_remove_their_blocks():
    full = quiet()
    counts = {
        kind: sum(isinstance(m, kind) for m in full.modules()) for kind in (ScanBlock, ExpertBlock, FrequencyBlock)
    }
    assert counts == {ScanBlock: 2, ExpertBlock: 2, FrequencyBlock: 2}
    for switch, kind in (("use_ssm", ScanBlock), ("use_moe", ExpertBlock), ("use_frequency", FrequencyBlock)):
        ablated = quiet(**{switch: False})
        assert not any(isinstance(m, kind) for m in ablated.modules())
        assert sum(p.numel() for p in ablated.parameters()) < sum(p.numel() for p in full.parameters())
        with torch.no_grad():
            assert ablated.eval()(picture(9, 10)).shape == (1, 3, 18, 20)


def test_descriptor_says_the_context_is_global():
    d = models.describe(models.create("ehrsr_tiny", scale=2))
    assert d.arch == "ehrsr"
    assert d.global_context
    assert d.receptive_radius == UNKNOWN_RADIUS
    assert d.multiple_of == 1
    assert d.fp16_safe is FP16_SAFE
    assert d.config["dim"] == 16
    assert d.config["use_ssm"] is True


def test_one_output_pixel_depends_on_the_whole_picture():
    model = randomized(quiet(), seed=5).eval()
    x = picture(40, 44).requires_grad_(True)
    model(x)[0, :, 3, 3].sum().backward()
    assert x.grad is not None
    assert (x.grad[0].abs().sum(0)[-8:, -8:] > 0).all()  # the far corner matters too


def test_checkpoint_round_trip(tmp_path):
    model = randomized(models.create("ehrsr_tiny", scale=2, use_frequency=False, top_k=1), seed=6)
    path = tmp_path / "e.safetensors"
    descriptor = models.save(model, path)
    assert descriptor.arch == "ehrsr"
    loaded = models.load(path, arch="ehrsr")
    assert isinstance(loaded, EHRSR)
    assert loaded.cfg == model.cfg
    x = picture(13, 17)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), model.eval()(x))
    fused_path = tmp_path / "f.safetensors"
    models.save(models.fuse(model), fused_path)
    with torch.no_grad():
        assert (models.load(fused_path)(x) - model(x)).abs().max() < 1e-5


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"levels": 1}, r"ehrsr: levels=1 must be one of \(2, 3\)"),
        ({"experts": 5}, "experts=5 must be 2..4"),
        ({"top_k": 4}, r"top_k=4 must be 0 \(all\) or 1..experts=3"),
        ({"heads": 5}, "heads=5 must divide the trunk width 64"),
        ({"out_channels": 1}, "out_channels=1 must equal in_channels=3"),
        ({"repmix_kernel": 4}, "repmix_kernel=4 must be odd"),
    ],
)
def test_bad_settings_name_the_value(options, message):
    with pytest.raises(ConfigError, match=message):
        models.create("ehrsr_tiny", scale=2, **options)


def test_bad_scale_and_unknown_option():
    with pytest.raises(ConfigError, match="scale"):
        models.create("ehrsr_tiny", scale=3)
    with pytest.raises(ConfigError, match=r"unknown ehrsr config fields \['use_fft'\]"):
        models.create("ehrsr_tiny", scale=2, use_fft=False)


def test_config_is_frozen_and_keyword_only():
    cfg = EHRSRConfig(dim=8)
    with pytest.raises(AttributeError):
        cfg.dim = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        EHRSRConfig(8)  # type: ignore[misc]
