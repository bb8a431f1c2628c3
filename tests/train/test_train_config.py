"""The YAML config: strict keys and types, every field documented, examples load."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from vsparagon.catalogue.table import DEFAULT_ARCH, architecture_of
from vsparagon.errors import ConfigError
from vsparagon.train import config as C

EXAMPLES = Path(__file__).parents[2] / "examples" / "train"


def test_example_configs_load():
    names = sorted(p.name for p in EXAMPLES.glob("*.yaml"))
    for wanted in ["smoke.yaml", "tiny_x2.yaml", "tiny_x4.yaml", "xs_x2.yaml", "xs_x4.yaml", "s_x2.yaml", "s_x4.yaml"]:
        assert wanted in names
    for path in EXAMPLES.glob("*.yaml"):
        cfg = C.load_config(path)
        assert cfg.model.scale in (2, 4)
        assert all(Path(s.path).is_absolute() or s.kind == "synthetic" for s in cfg.data.train)
        # a recipe that starts from another model names one that is in the repository
        assert cfg.model.init is None or Path(cfg.model.init).is_file(), (path.name, cfg.model.init)


def _every_dataclass() -> list[type]:
    seen, todo = [], [C.TrainConfig, C.Source, *typing.get_args(C.Step)]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.append(cls)
        for hint in typing.get_type_hints(cls).values():
            if dataclasses.is_dataclass(hint):
                todo.append(hint)
    return seen


def test_every_field_is_documented():
    for cls in _every_dataclass():
        for f in dataclasses.fields(cls):
            assert f.name == "type" or len(f.metadata.get("doc", "")) > 10, f"{cls.__name__}.{f.name} has no doc"
    text = "\n".join(C.explain())
    for key in ["optim.ema", "data.train[].kind", "degradation.steps[type=codec].crf", "loss.gan.discriminator"]:
        assert key in text


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"optim": {"lrr": 1}}, "unknown key(s) ['lrr']"),
        ({"bogus": 1}, "unknown key(s) ['bogus']"),
        ({"optim": {"lr": "fast"}}, "optim.lr: expected a number, got 'fast'"),
        ({"train": {"iters": 1.5}}, "train.iters: expected an integer"),
        ({"data": {"flip": "yes"}}, "data.flip: expected true or false"),
        ({"optim": {"amp": "int8"}}, "optim.amp: 'int8' is not one of"),
        ({"model": {"variant": "huge"}}, "unknown variant 'huge'"),
        ({"model": {"scale": 8}}, "unsupported scale 8"),
        ({"data": {"train": []}}, "no training sources"),
        ({"data": {"batch": 6}, "optim": {"accumulate": 4}}, "does not split into optim.accumulate=4"),
        ({"degradation": {"preset": "custom", "steps": [{"type": "sharpen"}]}}, "each step needs a type"),
        ({"degradation": {"preset": "custom", "steps": [{"type": "jpeg", "quality": [90, 10]}]}}, "0 <= lo <= hi"),
        ({"degradation": {"preset": "custom", "steps": [{"type": "jpeg", "qualty": [9, 10]}]}}, "unknown key(s)"),
        ({"degradation": {"steps": [{"type": "jpeg"}]}}, "only read with preset: custom"),
        ({"loss": {"perceptual": {"weight": 1.0}}}, "needs weights_path"),
        ({"optim": {"betas": [0.9]}}, "expected a list of 2 numbers"),
        ({"data": {"train": [{"kind": "images"}]}}, "needs a path"),
    ],
)
def test_bad_configs_name_the_key_and_value(raw, message):
    base = {"data": {"train": [{"kind": "synthetic"}]}}
    for key, value in raw.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    with pytest.raises(ConfigError) as err:
        C.parse_config(base)
    assert message in str(err.value)


def test_custom_pipeline_and_yaml_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "data: {train: [{kind: images, path: pics}]}\n"
        "optim: {lr: 5e-4}\n"  # YAML 1.1 reads this as a string; it must still be a number
        "degradation:\n  preset: custom\n  steps:\n"
        "    - {type: blur, sigma: [1, 2]}\n    - {type: codec, codecs: [hevc]}\n"
    )
    cfg = C.load_config(path, {"train.iters": 7})
    assert cfg.optim.lr == 5e-4
    assert cfg.train.iters == 7
    assert [type(s).__name__ for s in cfg.degradation.steps] == ["BlurStep", "CodecStep"]
    assert cfg.data.train[0].path == str(tmp_path / "pics")
    assert C.parse_config(C.to_plain(cfg)) == cfg


def test_cli_config_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: {lrr: 1}\ndata: {train: [{kind: synthetic}]}\n")
    for args in ([str(bad)], [str(tmp_path / "missing.yaml")], [str(bad), "--set", "novalue"], []):
        proc = subprocess.run(
            [sys.executable, "-m", "vsparagon.cli.main", "train", *args], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith("paragon train: error:"), proc.stderr
    explained = subprocess.run(
        [sys.executable, "-m", "vsparagon.cli.main", "train", "--explain"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "optim.grad_clip" in explained.stdout


RECIPES = sorted((Path(__file__).parents[2] / "examples" / "train").glob("*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_example_config_loads_and_shipping_recipes_guard_the_output_range(path):
    cfg = C.load_config(path)
    paragonsr = architecture_of(cfg.model.variant).name == DEFAULT_ARCH
    shipping = paragonsr and path.stem not in ("smoke", "compare_x2")
    assert (cfg.loss.range_guard > 0) == shipping, cfg.loss
