"""``paragon export`` of the research networks (EHR-SR, HERMES): random-init variants, checkpoints, bad input."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from helpers import paragon

from vsparagon import models
from vsparagon.catalogue.files import read_onnx


@pytest.mark.parametrize(("variant", "scale"), [("ehrsr_tiny", 2), ("hermes_tiny", 2), ("ehrsr_tiny", 4)])
def test_random_init_export_equals_pytorch_at_another_odd_size(tmp_path, variant, scale):
    out = tmp_path / "m.onnx"
    result = paragon("export", "--variant", variant, "--scale", str(scale), "--random-init", "-o", out)
    assert result.returncode == 0, result.stderr
    assert f"{variant} x{scale}" in result.stdout
    assert "global context" in result.stdout
    descriptor = read_onnx(out).descriptor
    assert descriptor is not None
    assert (descriptor.variant, descriptor.scale, descriptor.global_context) == (variant, scale, True)
    # the same weights as the command built (seed 0), at a size the export was not traced at
    torch.manual_seed(0)
    model = models.fuse(models.create(variant, scale=scale)).eval()
    x = np.random.default_rng(1).random((1, 3, 19, 27), dtype=np.float32)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"input": x})
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert y.shape == (1, 3, 19 * scale, 27 * scale)
    assert np.abs(y - want).max() < 1e-4


def test_a_research_checkpoint_exports_with_its_own_descriptor(tmp_path):
    ckpt = tmp_path / "h.safetensors"
    models.save(models.create("hermes_tiny", scale=4), ckpt)
    result = paragon("export", ckpt, "-o", tmp_path / "h.onnx")
    assert result.returncode == 0, result.stderr
    assert "hermes_tiny x4" in result.stdout
    descriptor = read_onnx(tmp_path / "h.onnx").descriptor
    assert descriptor is not None
    assert descriptor.arch == "hermes"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--variant", "ehrsr_tiny", "--scale", "3", "--random-init"],
            "--variant ehrsr_tiny --scale 3: unsupported scale 3; supported scales: 2, 4",
        ),
        (
            ["--variant", "hermes_tiny", "--scale", "1", "--random-init"],
            "--variant hermes_tiny --scale 1: unsupported scale 1; supported scales: 2, 4",
        ),
        (["--variant", "ehrsr_huge", "--scale", "2", "--random-init"], "unknown variant 'ehrsr_huge'"),
    ],
)
def test_a_scale_or_variant_a_preset_lacks_is_one_line_naming_the_choices(tmp_path, args, message):
    result = paragon("export", *args, "-o", tmp_path / "out.onnx", cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "out.onnx").exists()


def test_help_lists_the_research_variants_and_their_scales():
    result = paragon("export", "--help")
    text = " ".join(result.stdout.split())
    assert "ehrsr_tiny, ehrsr_base, hermes_tiny, hermes_base" in text
    assert "ehrsr: 2, 4; hermes: 2, 4" in text
