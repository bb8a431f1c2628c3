"""``paragon info`` as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import paragon


def test_info_reports_plugin_backends_and_reasons():
    result = paragon("info")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("vsparagon ")
    assert "libparagon.so" in text
    assert "ort-cpu: available" in text
    backends = text.split("Backends:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    names = [line.split(":", 1)[0].strip() for line in backends]
    assert names == ["auto", "ort-cpu", "openvino", "torch", "ort-cuda", "ort-trt", "trt"]
    assert backends[0].startswith("  auto: picks openvino here (the first usable of trt, ort-trt, ort-cuda, torch, ")
    for line in backends[4:]:  # no GPU on this machine: every GPU backend says why
        name = line.split(":", 1)[0].strip()
        assert line.startswith(f"  {name}: unavailable: "), line
        assert len(line) > len(f"  {name}: unavailable: ") + 10
    assert "  torch: available on the CPU only (no NVIDIA driver found" in text
    gpu = text.split("GPU:\n", 1)[1].split("\n\n", 1)[0]
    assert "  gpus: none: no NVIDIA driver found" in gpu
    assert "  driver: unknown (NVML not found)" in gpu
    shipped = text.split("Shipped models:\n", 1)[1]
    for stem in ("paragonsr_tiny_x2", "paragonsr_tiny_x4", "paragonsr_tiny_video_x2"):
        assert f"  {stem}: " in shipped
        assert f"models/{stem}.onnx" in shipped


def test_info_json():
    result = paragon("info", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["vapoursynth"]["version"].startswith("R")
    assert report["vapoursynth"]["paragon"].endswith("libparagon.so")
    assert report["vapoursynth"]["bestsource"].endswith(".so")
    assert report["packages"]["onnxruntime"]
    assert report["backends"]["ort-cpu"] == "available"
    assert report["backends"]["ort-cuda"].startswith("unavailable: ")
    assert report["backends"]["auto"].startswith("picks openvino here")
    assert report["gpu"]["gpus"].startswith("none: no NVIDIA driver found")
    assert report["gpu"]["cuda (driver)"] == "unknown"
    assert sorted(report["shipped_models"]) == [
        "paragonsr_tiny_video_x2",
        "paragonsr_tiny_x2",
        "paragonsr_tiny_x4",
    ]
    assert all(Path(path).is_file() for path in report["shipped_models"].values())
    assert "CPUExecutionProvider" in report["devices"]["onnxruntime providers"]


def test_info_says_whether_buffers_go_on_huge_pages(monkeypatch):
    from vsparagon.runtime import hugepages

    mode = hugepages.thp_mode()
    monkeypatch.delenv(hugepages.ENV_SWITCH, raising=False)
    line = json.loads(paragon("info", "--json").stdout)["precision"]["huge pages"]
    if mode in ("always", "madvise"):
        assert line == f"openvino's working memory on 2 MiB pages (transparent huge pages: {mode})"
    else:
        assert line.startswith("not used")
    monkeypatch.setenv(hugepages.ENV_SWITCH, "0")
    assert "  huge pages: off (VSPARAGON_HUGE_PAGES=0)" in paragon("info").stdout.splitlines()
