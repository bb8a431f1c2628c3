"""Helpers shared by tests: realistic random weights, real VapourSynth clips, the real CLI and ffmpeg."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import torch
import vapoursynth as vs

from vsparagon.models import ParagonSR
from vsparagon.runtime.engine_cache import EngineIdentity


@contextlib.contextmanager
def ctrl_c_reaches_children():
    """Processes started inside this block take Ctrl-C (SIGINT) as Python normally does.

    A shell starts a background job with SIGINT ignored, and a started process inherits an
    ignored signal (a handled one is reset to the default), so a test of Ctrl-C run by a job
    like that (a CI script's ``cmd &``) would see its child ignore it.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def randomize_(model: ParagonSR, seed: int = 0) -> ParagonSR:
    """Give every parameter a random value of realistic size, in place.

    Fresh models have tiny layer scales and a near-zero last conv, so their output
    is almost the nearest-neighbour skip and hides mistakes in the body. These
    weights make the body contribute O(1) to the output while keeping the output
    O(1) for every depth, so absolute tolerances mean the same for tiny and xl.
    """
    gen = torch.Generator().manual_seed(seed)
    depth = model.cfg.num_groups * model.cfg.blocks_per_group
    scale = 0.06 / depth**0.5
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layer_scale"):
                p.copy_(torch.empty(p.shape).uniform_(0.5 * scale, 1.5 * scale, generator=gen))
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.01)
            else:
                std = 0.5 / p[0].numel() ** 0.5
                if ".tail." in name:  # group tails compound across groups
                    std /= model.cfg.num_groups
                p.copy_(torch.randn(p.shape, generator=gen) * std)
    return model


def noise_clip(width: int, height: int, fmt: int = vs.RGBS, length: int = 3, seed: int = 0) -> vs.VideoNode:
    """A clip of smooth random colours (frame n differs from frame n+1), in ``fmt``."""
    blank = vs.core.std.BlankClip(width=width, height=height, format=vs.RGBS, length=length, keep=False)

    def paint(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        rng = np.random.default_rng(seed + n)
        coarse = rng.random((3, height // 4 + 2, width // 4 + 2), dtype=np.float32)
        out = f.copy()
        for p in range(3):
            plane = np.repeat(np.repeat(coarse[p], 4, axis=0), 4, axis=1)[:height, :width]
            np.copyto(np.asarray(out[p]), 0.1 + 0.8 * plane)
        return out

    rgb = blank.std.ModifyFrame(blank, paint)
    if fmt == vs.RGBS:
        return rgb
    target = vs.core.get_video_format(fmt)
    if target.color_family == vs.YUV:
        return rgb.resize.Bicubic(format=fmt, matrix_s="709", range_s="limited")
    if target.color_family == vs.GRAY:
        return rgb.std.ShufflePlanes(0, vs.GRAY).resize.Point(format=fmt, range_s="limited")
    return rgb.resize.Point(format=fmt)


def planes(frame: vs.VideoFrame) -> np.ndarray:
    return np.stack([np.asarray(frame[p]).astype(np.float64) for p in range(frame.format.num_planes)])


PARAGON = Path(sys.executable).with_name("paragon")
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def paragon(
    *args: str | os.PathLike[str], cwd: Path | None = None, cache: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``paragon`` console script; ``cache`` becomes ``VSPARAGON_CACHE``."""
    env = {k: v for k, v in os.environ.items() if k != "PARAGON_DEBUG"}
    if cache is not None:
        env["VSPARAGON_CACHE"] = str(cache)
    return subprocess.run(
        [str(PARAGON), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )


def media_info(path: Path) -> str:
    """``ffmpeg -i`` listing of ``path`` (imageio-ffmpeg ships no ffprobe)."""
    return subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr


def decoded_frames(path: Path) -> int:
    """Video frames in ``path``, counted by decoding all of it with ffmpeg."""
    out = subprocess.run(
        [FFMPEG, "-hide_banner", "-i", str(path), "-map", "0:v:0", "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=120,
    ).stderr
    return int(re.findall(r"frame=\s*(\d+)", out)[-1])


def duration(info: str) -> float:
    """Seconds from the ``Duration:`` line of :func:`media_info`."""
    match = re.search(r"Duration: (\d+):(\d+):([\d.]+)", info)
    assert match, info
    return int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3])


SAMPLE_FILM = Path(__file__).resolve().parents[1] / "examples" / "bigbuckbunny_320x180.mp4"


def film_frames(count: int, every: int) -> list[np.ndarray]:
    """``count`` RGB24 frames (H, W, 3) of the sample film, one in ``every`` (decoded with PyAV; skips without it)."""
    import pytest

    av = pytest.importorskip("av")
    frames = []
    with av.open(str(SAMPLE_FILM)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % every == 0:
                frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return frames


#: An engine identity for the engine cache tests (a TensorRT 10.7 fp16 engine of tiny x2 at 1080p).
ENGINE_IDENTITY = EngineIdentity(
    model="tiny_x2.onnx",
    onnx_sha256="ab" * 32,
    precision="fp16",
    io_types="float16->float16",
    profile=((1, 3, 1080, 1920),) * 3,
    workspace_mib=0,
    opt_level=3,
    trt_version="10.7.0",
    gpu="NVIDIA GeForce RTX 4090",
    compute="8.9",
)


def onnx_session(module: torch.nn.Module, example: torch.Tensor):
    """``module`` exported to ONNX (opset 17, dynamic batch/height/width, traced on ``example``) in a
    CPU ONNX Runtime session, for layer tests."""
    import onnxruntime as ort

    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (example,),
            buffer,
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "b", 2: "h", 3: "w"}, "output": {0: "b", 2: "h", 3: "w"}},
        )
    return ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
