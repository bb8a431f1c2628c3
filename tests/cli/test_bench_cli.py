"""``paragon bench`` as a user runs it: one process per contender, real runtimes, tiny frames."""

from __future__ import annotations

import json
import os

import pytest
from helpers import paragon

from vsparagon.bench.rows import bars, combine_rounds
from vsparagon.cli.bench_cmd import parse_size
from vsparagon.errors import ConfigError
from vsparagon.runtime.precision import native_reduced


def test_bench_json_ours_and_vs_mlrt_side_by_side(tiny_onnx, tmp_path):
    result = paragon(
        "bench", "--model", tiny_onnx, "--backend", "ort-cpu", "--size", "48x32", "--frames", "2", "--rounds", "2",
        "--json", cache=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["variant"] == "paragonsr_tiny"
    assert report["input"] == "48x32 RGBS"
    assert report["rounds"] == 2
    peers = ["mlrt-ort", "mlrt-ov", "mlrt-ov-defaults", "mlrt-ov-defaults-8bit"]
    assert list(report["results"]) == ["ours-ort-cpu", "ours-default-8bit", *peers]
    ours = report["results"]["ours-ort-cpu"]
    assert ours["label"] == "paragon ort-cpu"
    assert ours["output"] == "96x64"
    assert ours["ms_per_frame"] == pytest.approx(1000 / ours["fps"])
    assert ours["peak_mib"] >= ours["baseline_mib"] > 0
    shipped = report["results"]["ours-default-8bit"]
    assert shipped["label"] == "paragon default 8-bit"
    assert shipped["output"] == "96x64"
    assert shipped["precision"] in ("fp32", "bf16", "fp16")
    for row in (ours, shipped):  # two rounds, each in its own process: the best is reported, the median beside it
        assert len(row["rounds"]) == 2
        assert all(fps > 0 for fps in row["rounds"])
        assert row["fps"] == max(row["rounds"])
        assert row["fps_median"] == pytest.approx(sum(row["rounds"]) / 2)
    measured = []
    for peer in peers:
        r = report["results"][peer]
        if "skipped" in r:  # vs-mlrt is the 'bench' extra, not part of 'dev'
            assert "pip install vapoursynth-mlrt-" in r["skipped"]
            assert result.stderr.count(f"paragon bench: {peer} ") == 1  # not tried again in round 2
        else:
            assert r["fps"] > 0, r
            assert len(r["rounds"]) == 2
            assert r["output"] == "96x64"
            measured.append(peer)
    bars = report["bars"]
    if {"mlrt-ort", "mlrt-ov"} <= set(measured):
        fastest_peer = max(report["results"][peer]["fps"] for peer in ("mlrt-ort", "mlrt-ov"))
        assert bars["exact (fp32)"]["best"] == pytest.approx(ours["fps"] / fastest_peer)
    if "mlrt-ov-defaults-8bit" in measured:
        peer = report["results"]["mlrt-ov-defaults-8bit"]
        assert bars["as shipped, 8-bit source"]["median"] == pytest.approx(shipped["fps_median"] / peer["fps_median"])
    if not measured:
        assert bars == {}


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
        (["--rounds", "0"], "--rounds takes 1 to 100"),
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


def test_rounds_combine_into_best_and_median():
    runs = [{"label": "x", "fps": 2.0}, {"label": "x", "fps": 3.0}, {"label": "x", "fps": 2.5}]
    row = combine_rounds(runs)
    assert row["fps"] == 3.0
    assert row["rounds"] == [2.0, 3.0, 2.5]
    assert row["fps_median"] == 2.5
    assert combine_rounds([{"fps": 1.0}, {"error": "exit 1: boom"}]) == {"error": "exit 1: boom"}


def test_bars_take_each_sides_fastest_row_and_skip_a_missing_side():
    results = {
        "ours-ort-cpu": {"label": "paragon ort-cpu", "fps": 0.8, "fps_median": 0.7},
        "ours-openvino": {"label": "paragon openvino", "fps": 1.3, "fps_median": 1.2},
        "mlrt-ort": {"label": "vs-mlrt ort", "fps": 0.7, "fps_median": 0.6},
        "mlrt-ov": {"label": "vs-mlrt ov", "fps": 1.0, "fps_median": 0.8},
        "ours-default-8bit": {"label": "paragon default 8-bit", "fps": 2.4},  # one round: its own median
        "mlrt-ov-defaults-8bit": {"skipped": "core.ov is not installed"},
    }
    got = bars(results)
    assert list(got) == ["exact (fp32)"]
    assert got["exact (fp32)"] == {
        "best": pytest.approx(1.3),
        "median": pytest.approx(1.5),
        "ours": "paragon openvino",
        "peer": "vs-mlrt ov",
    }
