"""The filters benchmarks compare on one clip: vsparagon's backends and vs-mlrt's plugins (VapourSynth layer)."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import vapoursynth as vs

import vsparagon.plugin  # noqa: F401  (OpenVINO before the core, so vs-mlrt's bundled one cannot win)
from vsparagon.bench.rows import OURS_DEFAULT_8BIT, checkpoint_of
from vsparagon.plugin import upscale
from vsparagon.runtime import gpu_info
from vsparagon.runtime.backends.base import cpu_onnx_file
from vsparagon.runtime.graph_rewrite import ENV_SWITCH
from vsparagon.runtime.source import resolve

#: builder(clip, model, threads) -> the upscaled clip.
Builder = Callable[[vs.VideoNode, str, int], vs.VideoNode]


def ours(backend: str) -> Builder:
    """vsparagon with ``backend``; ``tile=0`` (automatic plan)."""
    return lambda clip, model, threads: upscale(clip, model=model, backend=backend, threads=threads)


def ours_as_given(backend: str) -> Builder:
    """vsparagon with ``backend`` on the graph as given (``VSPARAGON_GRAPH_REWRITE=0`` while it loads)."""

    def build(clip: vs.VideoNode, model: str, threads: int) -> vs.VideoNode:
        saved = os.environ.get(ENV_SWITCH)
        os.environ[ENV_SWITCH] = "0"
        try:
            return upscale(clip, model=model, backend=backend, threads=threads)
        finally:
            if saved is None:
                del os.environ[ENV_SWITCH]
            else:
                os.environ[ENV_SWITCH] = saved

    return build


def rewritten(model: str) -> str:
    """The CPU-rewritten graph vsparagon's CPU backends load for ``model`` (built into the cache if new)."""
    return str(cpu_onnx_file(resolve(variant="tiny", scale=2, model=model), fp16=False)[0])


def mlrt_ort_rewritten(clip: vs.VideoNode, model: str, threads: int) -> vs.VideoNode:
    """:func:`mlrt_ort` on the graph vsparagon's CPU backends load (what the rewrite alone is worth to it)."""
    return mlrt_ort(clip, rewritten(model), threads)


def mlrt_ort(clip: vs.VideoNode, model: str, threads: int) -> vs.VideoNode:
    """vs-mlrt ORT on the CPU, as vsmlrt.py's ``Backend.ORT_CPU()`` (one stream); no thread setting exists."""
    return vs.core.ort.Model(clip, model, provider="CPU", num_streams=1, verbosity=1, fp16=False)


def mlrt_ov(clip: vs.VideoNode, model: str, threads: int) -> vs.VideoNode:
    """vs-mlrt OpenVINO on the CPU, as vsmlrt.py's ``Backend.OV_CPU(num_threads=threads)`` builds it."""
    config = {
        "NUM_STREAMS": 1,
        "INFERENCE_NUM_THREADS": threads,
        "ENABLE_CPU_PINNING": "YES",
        "INFERENCE_PRECISION_HINT": "f32",
    }
    return vs.core.ov.Model(clip, model, device="CPU", fp16=False, config=lambda: config)


def mlrt_ov_defaults(clip: vs.VideoNode, model: str, threads: int) -> vs.VideoNode:
    """vs-mlrt OpenVINO on the CPU as it comes: no config, so OpenVINO picks its precision (bf16 on a CPU with it)."""
    return vs.core.ov.Model(clip, model, device="CPU")


def ours_reduced(clip: vs.VideoNode, model: str, threads: int) -> vs.VideoNode:
    """vsparagon OpenVINO with ``fp16=True``: the CPU's native reduced precision (bf16 or fp16)."""
    return upscale(clip, model=model, backend="openvino", threads=threads, fp16=True)


def eight_bit(build: Builder, *, takes_integers: bool) -> Builder:
    """``build`` in an 8-bit pipeline, as a user with an 8-bit source meets it, returned as RGBS for comparison.

    vsparagon takes the RGB24 clip itself (``takes_integers``: its default precision depends on
    the clip's depth); vs-mlrt takes only float clips, so its input is converted to RGBS and its
    output back to RGB24.
    """

    def build8(clip: vs.VideoNode, model: str, threads: int) -> vs.VideoNode:
        rgb24 = clip.resize.Point(format=vs.RGB24)
        out = build(rgb24 if takes_integers else rgb24.resize.Point(format=vs.RGBS), model, threads)
        return out.resize.Point(format=vs.RGB24).resize.Point(format=vs.RGBS)

    return build8


def ours_exact(clip: vs.VideoNode, model: str, threads: int) -> vs.VideoNode:
    """vsparagon with ``backend="auto"`` and ``fp16=False``: exact fp32 (the reference of the reduced modes)."""
    return upscale(clip, model=model, threads=threads, fp16=False)


def ours_default(clip: vs.VideoNode, model: str, threads: int) -> vs.VideoNode:
    """vsparagon as it comes: ``backend="auto"``, ``fp16=None``."""
    return upscale(clip, model=model, threads=threads)


#: Frames each GPU contender keeps in flight (vsparagon's default; vs-mlrt's peers are given the same).
GPU_STREAMS = 2


def ours_torch_cuda(clip: vs.VideoNode, model: str, threads: int) -> vs.VideoNode:
    """vsparagon ``backend="torch"`` on the checkpoint of ``model`` (on the GPU: rows run only where CUDA is)."""
    return upscale(clip, model=str(checkpoint_of(model)), backend="torch", threads=threads)


def mlrt_ort_cuda(clip: vs.VideoNode, model: str, threads: int) -> vs.VideoNode:
    """vs-mlrt ORT on the GPU, as vsmlrt.py's ``Backend.ORT_CUDA(fp16=True)`` builds it, with GPU_STREAMS streams."""
    return vs.core.ort.Model(
        clip, model, provider="CUDA", device_id=0, num_streams=GPU_STREAMS, fp16=True, cudnn_benchmark=True, verbosity=1
    )


def mlrt_trt(clip: vs.VideoNode, model: str, threads: int) -> vs.VideoNode:
    """vs-mlrt TensorRT, on an fp16 static-shape engine its ``trtexec`` builds (:mod:`.mlrt_trt`)."""
    from vsparagon.bench import mlrt_trt as engines

    plugin = vs.core.trt
    gpu = gpu_info.gpu_report().device(0)
    engine, fp16_io = engines.engine_for(
        model, plugin_path=plugin.plugin_path, version_code=int(plugin.Version()["tensorrt_version"]),
        gpu=gpu.name if gpu else "unknown", width=clip.width, height=clip.height,
    )  # fmt: skip
    source = clip.resize.Point(format=vs.RGBH) if fp16_io else clip
    out = plugin.Model(source, str(engine), device_id=0, num_streams=GPU_STREAMS, verbosity=2)
    return out.resize.Point(format=vs.RGBS) if fp16_io else out


#: vs-mlrt contenders: key -> (label, builder, plugin namespace).
PEERS: dict[str, tuple[str, Builder, str]] = {
    "mlrt-ort": ("vs-mlrt ort", mlrt_ort, "ort"),
    "mlrt-ov": ("vs-mlrt ov", mlrt_ov, "ov"),
    "mlrt-ov-defaults": ("vs-mlrt ov defaults", mlrt_ov_defaults, "ov"),
    "mlrt-ov-defaults-8bit": ("vs-mlrt ov defaults 8-bit", eight_bit(mlrt_ov_defaults, takes_integers=False), "ov"),
    "mlrt-trt": ("vs-mlrt trt", mlrt_trt, "trt"),
    "mlrt-ort-cuda": ("vs-mlrt ort cuda", mlrt_ort_cuda, "ort"),
}
#: Our reduced-precision contender (``paragon bench`` adds it where the CPU has native bf16/fp16).
OURS_REDUCED = "ours-openvino-fp16"


def builder(key: str) -> tuple[str, Builder]:
    """(label, builder) for ``ours-<backend>`` or a :data:`PEERS` key.

    Raises:
        LookupError: a vs-mlrt plugin that is not installed.
    """
    if key == OURS_REDUCED:
        return "paragon openvino fp16", ours_reduced
    if key == OURS_DEFAULT_8BIT:
        return "paragon default 8-bit", eight_bit(ours_default, takes_integers=True)
    if key == "ours-torch-cuda":
        return "paragon torch cuda", ours_torch_cuda
    if key.startswith("ours-"):
        backend = key.removeprefix("ours-")
        return f"paragon {backend}", ours(backend)
    label, build, namespace = PEERS[key]
    if not hasattr(vs.core, namespace):
        package = f"vapoursynth-mlrt-{namespace}"
        package += " vapoursynth-mlrt-ort-cuda" if key == "mlrt-ort-cuda" else ""
        raise LookupError(f"core.{namespace} is not installed (pip install {package})")
    return label, build


def noise_clip(width: int, height: int, length: int) -> vs.VideoNode:
    """An RGBS clip of blocky noise (up to 4 distinct patterns in turn), made once with numpy."""
    rng = np.random.default_rng(0)
    count = min(length, 4)
    raw = rng.random((count, 3, height // 4 + 1, width // 4 + 1), dtype=np.float32)
    # Nearest x4 blow-up blended with fine noise: edges and flat areas, like real content.
    coarse = raw.repeat(4, axis=2).repeat(4, axis=3)[:, :, :height, :width]
    patterns = np.clip(0.8 * coarse + 0.2 * rng.random(coarse.shape, dtype=np.float32), 0, 1)
    blank = vs.core.std.BlankClip(width=width, height=height, format=vs.RGBS, length=length)

    def fill(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), patterns[n % count, p])
        return out

    return vs.core.std.ModifyFrame(blank, blank, fill)


def planes(frame: vs.VideoFrame) -> np.ndarray:
    """(3, H, W) float32 copy of an RGBS frame."""
    return np.stack([np.asarray(frame[p]) for p in range(3)])
