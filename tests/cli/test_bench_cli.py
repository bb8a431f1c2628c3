"""``paragon bench`` as a user runs it: one process per contender, real runtimes, tiny frames."""

from __future__ import annotations

import json
import os

import pytest
from helpers import paragon

from vsparagon.cli.bench_cmd import parse_size
from vsparagon.errors import ConfigError
from vsparagon.runtime.precision import native_reduced


def test_bench_json_ours_and_vs_mlrt_side_by_side(tiny_onnx, tmp_path):
    result = paragon(
        "bench", "--model", tiny_onnx, "--backend", "ort-cpu", "--size", "48x32", "--frames", "2", "--json",
        cache=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["variant"] == "paragonsr_tiny"
    assert report["input"] == "48x32 RGBS"
    assert list(report["results"]) == ["ours-ort-cpu", "mlrt-ort", "mlrt-ov", "mlrt-ov-defaults"]
    ours = report["results"]["ours-ort-cpu"]
    assert ours["label"] == "paragon ort-cpu"
    assert ours["output"] == "96x64"
    assert ours["fps"] > 0
    assert ours["ms_per_frame"] == pytest.approx(1000 / ours["fps"])
    assert ours["peak_mib"] >= ours["baseline_mib"] > 0
    for peer in ("mlrt-ort", "mlrt-ov", "mlrt-ov-defaults"):
        r = report["results"][peer]
        if "skipped" in r:  # vs-mlrt is the 'bench' extra, not part of 'dev'
            assert "pip install vapoursynth-mlrt-" in r["skipped"]
        else:
            assert r["fps"] > 0, r
            assert r["output"] == "96x64"


def test_bench_table_of_a_random_init_variant(tmp_path):
    result = paragon(
        "bench", "--random-init", "--variant", "tiny", "--scale", "2", "--backend", "openvino", "--size", "32x32",
        "--frames", "1", "--no-peers", cache=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    # one warm-up frame per frame in flight (VapourSynth's default core.num_threads: the CPU count)
    assert f"{os.cpu_count()} warm-up + 1 timed frames" in lines[0]
    assert lines[1].split() == ["contender", "fps", "ms/frame", "peak", "MiB", "setup", "s"]
    assert lines[2].startswith("paragon openvino ")
    if native_reduced() is None:
        assert len(lines) == 3
    else:  # the CPU runs bf16/fp16 natively: our reduced mode is measured too
        assert lines[3].startswith("paragon openvino fp16 ")
        assert len(lines) == 4
    assert (tmp_path / "bench" / "random_tiny_x2.onnx").is_file()  # exported once, into the cache


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "8x8"], "--size takes WIDTHxHEIGHT with each from 16 to 8192"),
        (["--backend", "ort-cpu,warp"], "unknown backend 'warp'"),
        (["--frames", "0"], "--frames must be >= 1"),
        (["--variant", "xl"], "no trained model ships for variant 'xl' at scale 2"),
        (["--random-init", "--model", "m.onnx"], "give either --model or --random-init"),
    ],
)
def test_bench_bad_input(args, message, tmp_path):
    result = paragon("bench", *args, cache=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("paragon bench: error: ")
    assert message in lines[0]


def test_parse_size():
    assert parse_size("640x480") == (640, 480)
    assert parse_size(" 32 X 16 ") == (32, 16)
    for bad in ("640", "640x", "0x10", "9000x10", "axb"):
        with pytest.raises(ConfigError):
            parse_size(bad)
