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
    assert "trt: unavailable: backend='trt' (GPU) is not available in this version of vsparagon yet" in text
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
    assert sorted(report["shipped_models"]) == [
        "paragonsr_tiny_video_x2",
        "paragonsr_tiny_x2",
        "paragonsr_tiny_x4",
    ]
    assert all(Path(path).is_file() for path in report["shipped_models"].values())
    assert "CPUExecutionProvider" in report["devices"]["onnxruntime providers"]
