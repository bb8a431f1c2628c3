"""``paragon info MODEL`` and ``paragon export MODEL.pth`` on other projects' checkpoints.

In process (``vsparagon.cli.main.main``): a new ``paragon`` process would spend seconds importing
torch and spandrel for each call; the console script itself is tested in tests/cli.
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest

from vsparagon.catalogue import read_onnx
from vsparagon.cli.main import main


@pytest.fixture
def paragon(capsys):
    def run(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out, stderr=err)

    return run


def test_info_shows_what_was_detected(zoo, paragon):
    result = paragon("info", zoo["esrgan"])
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith(f"Model {zoo['esrgan']}:\n")
    for line in (
        "  kind: another project's checkpoint (loaded by spandrel ",
        "  architecture: ESRGAN (spandrel id ESRGAN; SR; 8nf, 1nb)",
        "  scale: x2",
        "  channels: 3 -> 3 (RGB)",
        "  size requirements: at least 2 px a side",
        "  fp16 safe: yes",
        "  tiling: join='crop' is exact with an overlap of ",
    ):
        assert line in text, text
    assert "  parameters: 225,515" in text  # sum of the tensors' sizes
    radius = json.loads(paragon("info", zoo["esrgan"], "--json").stdout)["receptive radius"]
    assert f"  receptive radius: {radius} px" in text


def test_info_says_a_global_model_blends(zoo, paragon):
    report = json.loads(paragon("info", zoo["rcan"], "--json").stdout)
    assert report["receptive radius"] is None
    assert report["tiling"].startswith("global context (an impulse reaches every edge")
    assert report["descriptor"]["global_context"] is True
    assert report["fp16 safe"] is False  # spandrel's word for RCAN


def test_export_writes_any_of_them(zoo, tmp_path, paragon):
    target = tmp_path / "span.onnx"
    result = paragon("export", zoo["span"], "-o", target)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {target} (SPAN x2, fp32, opset 17, max |onnxruntime - torch| = ")
    assert read_onnx(target).descriptor.arch == "SPAN"


def test_an_unsafe_file_is_one_line(tmp_path, paragon):
    evil = tmp_path / "evil.pth"
    import torch

    torch.save({"payload": print}, evil)
    result = paragon("info", evil)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert re.search(r"refused: loading it would run code \(\S*print\)", result.stderr)
