"""Checks that the research networks' export tests share: one ONNX file against the PyTorch outputs
on ONNX Runtime and OpenVINO, and float16 finiteness on the stress patterns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from vsparagon.export import export_onnx
from vsparagon.export.stress import stress_inputs, worst
from vsparagon.runtime.backends import openvino
from vsparagon.train.data import synthetic_picture


def routing_inputs(
    size: tuple[int, int], *, photo_seed: int, noise_seed: int, grey: float, photo_side: int = 0
) -> list[np.ndarray]:
    """A photo (the top-left corner of a ``photo_side`` synthetic picture, by default the larger of
    ``size``), uniform noise and a flat grey picture: content a router sends to different experts."""
    h, w = size
    photo = (
        synthetic_picture(photo_seed, photo_side or max(h, w)).transpose(2, 0, 1)[:, :h, :w].astype(np.float32) / 255
    )
    noise = np.random.default_rng(noise_seed).random((3, h, w), dtype=np.float32)
    flat = np.full((3, h, w), grey, dtype=np.float32)
    return [np.ascontiguousarray(a)[None] for a in (photo, noise, flat)]


def assert_onnx_runtime_matches(
    path: Path, inputs: list[np.ndarray], expected: list[np.ndarray], *, atol: float
) -> None:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for x, want in zip(inputs, expected, strict=True):
        (out,) = session.run(None, {"input": x})
        assert out.shape == want.shape
        np.testing.assert_allclose(out, want, atol=atol, rtol=0)


def assert_openvino_matches(path: Path, inputs: list[np.ndarray], expected: list[np.ndarray], *, atol: float) -> None:
    ov = openvino.import_openvino()
    core = openvino.shared_core(ov)
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    for x, want in zip(inputs, expected, strict=True):
        out = compiled([x])[compiled.output(0)]
        np.testing.assert_allclose(out, want, atol=atol, rtol=0)


def fp16_stress_results(model: torch.nn.Module, path: Path, *, fp16_safe: bool) -> dict[str, float]:
    """Export ``model`` in float16, run every stress pattern on ONNX Runtime: the largest |output| of each.

    Also checks that the descriptor's ``fp16_safe`` is the claim (``fp16_safe``) this check backs.
    """
    report = export_onnx(model, path, fp16=True, verify=False)
    assert report.descriptor.fp16_safe is fp16_safe
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    photo = synthetic_picture(3, 48).transpose(2, 0, 1).astype(np.float32) / 255
    results = {}
    for name, x in stress_inputs(photo).items():
        (out,) = session.run(None, {"input": x.astype(np.float16)})
        results[name] = worst(out.astype(np.float32))
    return results
