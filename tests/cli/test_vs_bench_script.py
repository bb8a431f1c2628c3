"""benchmarks/vs_bench.py's choices that do not need a timed run: which filters it runs, what --memory takes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "vs_bench.py"


@pytest.fixture(scope="module")
def vs_bench():
    spec = importlib.util.spec_from_file_location("vs_bench_under_test", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


@pytest.mark.parametrize("native", [None, "bf16"])
def test_the_fp16_true_row_runs_only_where_the_cpu_has_native_reduced_precision(vs_bench, monkeypatch, capsys, native):
    monkeypatch.setattr(vs_bench, "native_reduced", lambda: native)
    found = vs_bench.available_filters()
    assert ("paragon ov fp16=True" in found) == (native is not None)
    assert "paragon openvino" in found
    assert "paragon default, 8-bit" in found
    said = capsys.readouterr().err
    assert ("skipping paragon ov fp16=True" in said) == (native is None)


def test_memory_takes_known_filters_or_none(vs_bench, capsys):
    assert vs_bench.parse_args(["--memory", "none"]).memory == []
    assert vs_bench.parse_args(["--memory", ""]).memory == []
    assert vs_bench.parse_args(["--memory", "ours-openvino,mlrt-ov"]).memory == ["ours-openvino", "mlrt-ov"]
    with pytest.raises(SystemExit):
        vs_bench.parse_args(["--memory", "ours-openvino,nonsense"])
    assert "--memory: unknown nonsense; one of ours-ort-cpu" in capsys.readouterr().err
