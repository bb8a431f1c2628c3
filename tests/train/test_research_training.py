"""Training the research networks (EHR-SR, HERMES): options, auxiliary losses, expert usage, resume, release."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from train_helpers import BASE, merge

from vsparagon import models
from vsparagon.errors import CheckpointError, ConfigError
from vsparagon.models.layers.experts import MixtureOfExperts, Router
from vsparagon.train import losses as train_losses
from vsparagon.train import train
from vsparagon.train.config import explain, load_config, parse_config
from vsparagon.train.report import plot_usage
from vsparagon.train.run import Objective
from vsparagon.train.state import list_states, load_state

REPO = Path(__file__).parents[2]
RESEARCH = ["ehrsr_tiny", "hermes_tiny"]
#: A few steps on 16 px LR crops: seconds per run on the CPU.
SHORT = {
    "data": {"crop": 16, "batch": 2, "val": [{"kind": "synthetic", "count": 1, "size": 40}]},
    "train": {"iters": 4, "save_every": 2, "log_every": 2, "val_every": 4},
    "optim": {"ema": 0.9, "warmup": 2},
}


def research_cfg(variant: str, extra: dict | None = None):
    return parse_config(merge(merge(merge(BASE, SHORT), {"model": {"variant": variant}}), extra or {}))


def records(out: Path, kind: str) -> list[dict]:
    return [r for r in map(json.loads, (out / "log.jsonl").read_text().splitlines()) if r["kind"] == kind]


# --- end to end ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", RESEARCH)
def test_a_research_network_trains_logs_its_router_and_releases(variant, tmp_path):
    result = train(research_cfg(variant), tmp_path)
    assert result.step == 4
    logged = records(tmp_path, "train")
    assert [r["step"] for r in logged] == [2, 4]
    for record in logged:  # the mixture's losses, added by the loop by itself, each logged by name
        assert record["aux_load_balance"] > 0
        assert record["aux_router_entropy"] >= 0
        usage = record["experts"]
        assert usage, "no expert usage logged"
        for shares in usage.values():
            assert sum(shares) == pytest.approx(1.0, abs=1e-5)
    assert (tmp_path / "experts.png").stat().st_size > 1000
    assert (tmp_path / "curves.png").is_file()
    # the release (EMA, fused) loads back as its own architecture only
    assert result.release == tmp_path / f"{variant}_x2.safetensors"
    arch = variant.split("_")[0]
    released = models.load(result.release, arch=arch)
    assert models.describe(released).global_context
    with pytest.raises(CheckpointError, match=f"holds a {arch} model .* not a paragonsr one"):
        models.load(result.release, arch="paragonsr")


@pytest.mark.parametrize("variant", RESEARCH)
def test_a_research_run_resumes_exactly(variant, tmp_path):
    cfg = research_cfg(variant, {"train": {"val_every": 0}})
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(cfg, straight)
    assert train(cfg, split, stop_at=2).step == 2
    assert train(cfg, split, resume=True).step == 4
    a = load_state(list_states(straight / "checkpoints")[-1][1]).modules
    b = load_state(list_states(split / "checkpoints")[-1][1]).modules
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    assert records(split, "train")[-1]["loss"] == records(straight, "train")[-1]["loss"]


@pytest.mark.parametrize("variant", RESEARCH)
def test_an_ablation_without_experts_trains_with_no_router_losses(variant, tmp_path):
    cfg = research_cfg(variant, {"model": {"options": {"use_moe": False}}, "train": {"iters": 2, "val_every": 0}})
    result = train(cfg, tmp_path)
    (record,) = records(tmp_path, "train")
    assert not any(key.startswith("aux_") for key in record)
    assert "experts" not in record
    assert not (tmp_path / "experts.png").exists()
    assert models.load(result.release).cfg.use_moe is False  # the option travels with the release


def test_resume_refuses_other_options(tmp_path):
    train(research_cfg("ehrsr_tiny", {"train": {"iters": 2, "val_every": 0}}), tmp_path)
    other = research_cfg("ehrsr_tiny", {"model": {"options": {"dim": 16}}, "train": {"iters": 4}})
    with pytest.raises(CheckpointError, match="trained a different model"):
        train(other, tmp_path, resume=True)


def test_init_from_another_architecture_is_refused_naming_both(tmp_path):
    paragon = tmp_path / "tiny.safetensors"
    models.save(models.create("tiny", 2), paragon)
    cfg = research_cfg("ehrsr_tiny", {"model": {"init": str(paragon)}})
    with pytest.raises(CheckpointError, match=r"holds a paragonsr model \(paragonsr_tiny\), not a ehrsr"):
        train(cfg, tmp_path / "run")
    train(research_cfg("hermes_tiny", {"train": {"iters": 2, "val_every": 0}}), tmp_path / "hermes")
    state = list_states(tmp_path / "hermes" / "checkpoints")[-1][1]
    with pytest.raises(CheckpointError, match="training checkpoint of a hermes model, not a ehrsr one"):
        train(research_cfg("ehrsr_tiny", {"model": {"init": str(state)}}), tmp_path / "run2")


# --- the config -------------------------------------------------------------------------------------------------


def test_options_are_checked_against_the_architectures_config():
    cfg = research_cfg("ehrsr_tiny", {"model": {"options": {"dim": 16}}})
    assert cfg.model.options == {"dim": 16}
    with pytest.raises(ConfigError, match=r"model.options: unknown ehrsr config fields \['no_such_switch'\]; known:"):
        research_cfg("ehrsr_tiny", {"model": {"options": {"no_such_switch": False}}})
    with pytest.raises(ConfigError, match=r"model.options.dim: expected a number, true/false or a string"):
        research_cfg("ehrsr_tiny", {"model": {"options": {"dim": [1]}}})
    with pytest.raises(ConfigError, match=r"set the gate with model\.gate and the scale with model\.scale"):
        research_cfg("hermes_tiny", {"model": {"options": {"scale": 4}}})


def test_a_scale_or_gate_the_architecture_lacks_is_refused():
    with pytest.raises(ConfigError, match=r"model: unsupported scale 3; supported scales: 2, 4"):
        research_cfg("ehrsr_tiny", {"model": {"scale": 3}})
    with pytest.raises(ConfigError, match=r"model.gate: 'sigmoid': the gate is a ParagonSR setting, hermes_tiny"):
        research_cfg("hermes_tiny", {"model": {"gate": "sigmoid"}})
    assert research_cfg("hermes_tiny", {"model": {"scale": 4}}).run_name == "hermes_tiny_x4"


def test_explain_documents_the_new_fields():
    lines = "\n".join(explain())
    assert "model.options (default {}):" in lines
    assert "loss.anti_ringing (default 0.0):" in lines
    assert "ehrsr_tiny" in lines
    assert "aux_<name>" in lines


@pytest.mark.parametrize(
    ("name", "variant", "ringing"), [("ehrsr", "ehrsr_tiny", 0.0), ("hermes", "hermes_tiny", None)]
)
def test_example_configs_load(name, variant, ringing):
    cfg = load_config(REPO / "examples" / "train" / f"{name}_tiny_x2.yaml")
    assert (cfg.model.variant, cfg.model.scale) == (variant, 2)
    assert Path(cfg.data.train[0].path).resolve() == (REPO / "data" / "train").resolve()
    if ringing is None:
        assert cfg.loss.anti_ringing > 0
    else:
        assert cfg.loss.anti_ringing == ringing
    assert parse_config(merge(BASE, {})).loss.anti_ringing == 0  # off unless asked for


# --- the objective's parts --------------------------------------------------------------------------------------


class _Routed(nn.Module):
    """A real mixture of two conv experts on a picture (the protocol, independent of the research networks)."""

    def __init__(self) -> None:
        super().__init__()
        experts = [nn.Conv2d(3, 3, 3, padding=1) for _ in range(2)]
        self.moe = MixtureOfExperts(experts, Router(3, 2, top_k=1), balance_weight=0.5, entropy_weight=0.25)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.moe(x)


def test_the_objective_adds_each_auxiliary_loss_by_itself():
    torch.manual_seed(0)
    model = _Routed().train()
    x = torch.rand(2, 3, 12, 12)
    sr = model(x)
    aux = {k: float(v.detach()) for k, v in model.moe.last_losses.items()}
    assert set(aux) == {"load_balance", "router_entropy"}
    objective = Objective(parse_config(merge(BASE, {"loss": {"aux_weight": 2.0}})))
    total, parts = objective(sr, x, model)
    assert parts["aux_load_balance"] == pytest.approx(aux["load_balance"])
    assert parts["aux_router_entropy"] == pytest.approx(aux["router_entropy"])
    expected = parts["pixel"] + 2.0 * (aux["load_balance"] + aux["router_entropy"])
    assert float(total) == pytest.approx(expected, rel=1e-5)
    total.backward()  # the router learns from them
    assert model.moe.router.proj.weight.grad is not None
    off = Objective(parse_config(merge(BASE, {"loss": {"aux_weight": 0.0}})))
    assert "aux_load_balance" not in off(model(x), x, model)[1]


def test_the_anti_ringing_term_penalises_overshoot_only():
    edge = torch.zeros(1, 3, 16, 16)
    edge[..., 8:] = 1.0
    assert float(train_losses.anti_ringing(edge, edge)) == 0.0
    blurred = torch.nn.functional.avg_pool2d(edge, 3, stride=1, padding=1, count_include_pad=False)
    assert float(train_losses.anti_ringing(blurred, edge)) == 0.0  # softness is not ringing
    ringing = edge.clone()
    ringing[..., 6] = -0.2  # a dark halo beside the edge, and a bright one past it
    ringing[..., 10] = 1.2
    assert float(train_losses.anti_ringing(ringing, edge)) > 0.0
    cfg = parse_config(merge(BASE, {"loss": {"anti_ringing": 0.5}}))
    total, parts = Objective(cfg)(ringing, edge, nn.Identity())
    assert parts["anti_ringing"] == pytest.approx(float(train_losses.anti_ringing(ringing, edge)))
    assert float(total) == pytest.approx(parts["pixel"] + 0.5 * parts["anti_ringing"], rel=1e-5)


def test_usage_plot_needs_usage(tmp_path):
    without = [{"kind": "train", "step": 1, "loss": 1.0}]
    assert not plot_usage(without, tmp_path / "none.png", "x")
    assert not (tmp_path / "none.png").exists()
    shares = [{"kind": "train", "step": s, "experts": {"a.moe": [0.5, 0.5], "b.moe": [0.9, 0.1]}} for s in (1, 2)]
    assert plot_usage(shares, tmp_path / "usage.png", "x")
    assert (tmp_path / "usage.png").stat().st_size > 1000
