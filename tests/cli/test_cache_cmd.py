"""``paragon cache list|clear`` on a real engine cache folder."""

from __future__ import annotations

import json
import os
import time

from helpers import ENGINE_IDENTITY as IDENTITY
from helpers import paragon

from vsparagon.cli.main import main
from vsparagon.runtime.engine_cache import EngineCache


def _fill(cache_root):
    cache = EngineCache(cache_root / "engines")
    cache.fetch(IDENTITY, build=lambda: b"E" * (3 << 20), load=lambda d: d, what="x")
    ort = cache_root / "engines" / "ort-trt"
    ort.mkdir()
    (ort / "TensorrtExecutionProvider_TRTKernel_graph_main_1_sm89.engine").write_bytes(b"x" * 1000)
    return cache.entry(IDENTITY)


def test_list_shows_every_entry(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VSPARAGON_CACHE", str(tmp_path))
    _fill(tmp_path)
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"{tmp_path / 'engines'}:"
    assert lines[1].split() == ["kind", "model", "precision", "shape", "TensorRT", "GPU", "size", "written", "file"]
    engine = lines[2]
    for word in ("trt", "tiny_x2.onnx", "fp16", "1x3x1080x1920", "10.7.0", "NVIDIA GeForce RTX 4090 (8.9)", "3.0 MiB"):
        assert word in engine
    assert time.strftime("%Y-%m-%d") in engine
    assert lines[3].startswith("ort-trt")
    assert "ort-trt/TensorrtExecutionProvider" in lines[3]
    assert lines[-1] == "2 files, 3.0 MiB"


def test_list_as_json_and_empty(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VSPARAGON_CACHE", str(tmp_path))
    assert main(["cache", "list"]) == 0
    assert capsys.readouterr().out == f"no cached engines in {tmp_path / 'engines'}\n"
    _fill(tmp_path)
    assert main(["cache", "list", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [e["kind"] for e in report["entries"]] == ["trt", "ort-trt"]
    assert report["entries"][0]["gpu"] == "NVIDIA GeForce RTX 4090 (8.9)"


def test_clear_older_than_then_all(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VSPARAGON_CACHE", str(tmp_path))
    engine = _fill(tmp_path)
    os.utime(engine, (time.time() - 30 * 86400,) * 2)
    assert main(["cache", "clear", "--older-than", "7"]) == 0
    assert capsys.readouterr().out.startswith("removed 1 cached file (3.0 MiB) from ")
    assert not engine.exists()
    assert main(["cache", "clear"]) == 0
    assert capsys.readouterr().out.startswith("removed 1 cached file (0.0 MiB)")
    assert main(["cache", "list"]) == 0
    assert capsys.readouterr().out.startswith("no cached engines")


def test_bad_days_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VSPARAGON_CACHE", str(tmp_path))
    assert main(["cache", "clear", "--older-than", "-1"]) == 2
    assert capsys.readouterr().err == "paragon cache: error: --older-than must be a number of days >= 0, got -1.0\n"


def test_the_installed_command(tmp_path):
    _fill(tmp_path)
    listed = paragon("cache", "list", cache=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "tiny_x2.onnx" in listed.stdout
    cleared = paragon("cache", "clear", cache=tmp_path)
    assert cleared.returncode == 0
    assert cleared.stdout.startswith("removed 2 cached files")
