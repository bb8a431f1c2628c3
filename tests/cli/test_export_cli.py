"""``paragon export`` as a user runs it: a real process, real files, one-line errors."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from helpers import PARAGON, paragon

from vsparagon import models


def test_console_script_is_installed():
    assert PARAGON.exists(), "pip install -e '.[dev]' should create the paragon console script"
    result = paragon("--help")
    assert result.returncode == 0
    assert "export" in result.stdout


def test_random_init_export_runs_in_onnxruntime(tmp_path):
    out = tmp_path / "tiny.onnx"
    result = paragon("export", "--variant", "tiny", "--scale", "2", "--random-init", "-o", out)
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout
    assert "paragonsr_tiny x2" in result.stdout
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"input": np.random.rand(1, 3, 20, 24).astype(np.float32)})
    assert y.shape == (1, 3, 40, 48)


def test_checkpoint_export_fp16_with_opset(tmp_path):
    ckpt = tmp_path / "xs.safetensors"
    models.save(models.create("xs", scale=4), ckpt)
    out = tmp_path / "xs16.onnx"
    result = paragon("export", ckpt, "-o", out, "--fp16", "--opset", "18")
    assert result.returncode == 0, result.stderr
    assert "fp16, opset 18" in result.stdout
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"input": np.random.rand(1, 3, 8, 8).astype(np.float16)})
    assert y.shape == (1, 3, 32, 32)
    assert y.dtype == np.float16


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--variant", "huge", "--scale", "2", "--random-init"], "unknown variant 'huge'; valid variants: tiny, xs"),
        (["--variant", "tiny", "--scale", "5", "--random-init"], "unsupported scale 5"),
        (["--variant", "tiny", "--random-init"], "--random-init needs --variant and --scale"),
        ([], "give a CHECKPOINT file"),
        (["missing.safetensors"], "missing.safetensors: no such checkpoint file"),
        (["garbage.safetensors"], "garbage.safetensors: not a readable safetensors checkpoint"),
        (["garbage.safetensors", "--variant", "tiny"], "--variant and --scale go with --random-init"),
        (["--variant", "tiny", "--scale", "2", "--random-init", "--opset", "2"], "unsupported opset 2"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, args, message):
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00" * 64)
    result = paragon("export", *args, "-o", tmp_path / "out.onnx", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("paragon export: error: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out.onnx").exists()


def test_unwritable_destination(tmp_path):
    result = paragon(
        "export", "--variant", "tiny", "--scale", "2", "--random-init", "-o", tmp_path / "nodir" / "m.onnx"
    )
    assert result.returncode == 2
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_output_suffix(tmp_path):
    result = paragon("export", "--variant", "tiny", "--scale", "2", "--random-init", "-o", tmp_path / "m.pt")
    assert result.returncode == 2
    assert "should end in .onnx" in result.stderr
