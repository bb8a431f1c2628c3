"""``paragon.Upscale``: the VapourSynth filter, all in Python.

The work per frame is: RGBS planes -> (3, H, W) float32 -> tiled inference
(GIL released inside the runtime) -> planes of a new RGBS frame. Everything
around it (format conversion, validation, session sharing) happens once, when
the filter is created, so a bad parameter fails the script, not a frame.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import vapoursynth as vs

from vsparagon.catalogue import SCALES, ModelDescriptor
from vsparagon.errors import ConfigError, MissingDependencyError, ParagonError
from vsparagon.plugin import formats
from vsparagon.runtime.backends import Session, backend_names
from vsparagon.runtime.policy import JOINS, TilePlan, auto_streams, plan_frame
from vsparagon.runtime.sessions import open_session, resolve_backend
from vsparagon.runtime.source import ModelSource, open_model, resolve

PREFIX = "paragon.Upscale: "


def upscale(
    clip: vs.VideoNode,
    variant: str = "tiny",
    scale: int = 2,
    model: str | os.PathLike[str] | None = None,
    backend: str = "auto",
    tile: int | Sequence[int] = 0,
    overlap: int = -1,
    fp16: bool | None = None,
    threads: int = 0,
    device: int = 0,
    join: str = "crop",
) -> vs.VideoNode:
    """Upscale ``clip`` with a ParagonSR model; same format out, ``scale`` times larger.

    Args:
        clip: any constant-format RGB, YUV or GRAY clip, integer 8-16 bit or float 16/32.
            An attached alpha (``_Alpha`` frame property) is upscaled too.
        variant: a shipped model (``tiny``, ``xs``, ``tiny_video``, ...; the error for one that does not
            ship at ``scale`` lists what does).
        scale: upscaling factor (1-4); the model must have this scale.
        model: a ``.onnx`` or ``.safetensors`` file used instead of a shipped variant, or another project's
            checkpoint (``.pth``, ``.ckpt``, ``.safetensors``: ESRGAN, Compact, SPAN, ... through spandrel,
            converted to ONNX once into the cache; needs the ``zoo`` extra).
        backend: ``auto`` (OpenVINO, else ONNX Runtime), ``ort-cpu``, ``openvino``, ``torch``,
            or the GPU backends ``ort-cuda``, ``ort-trt``, ``trt`` (not available yet).
        tile: core tile size in input pixels, ``N`` or ``[width, height]``; 0 = whole frame
            if it fits the memory budget, else the largest tile that does.
        overlap: context around each tile in input pixels; -1 = the model's receptive
            radius for ``join="crop"`` (tiled == whole frame), a smaller value for ``blend``.
        fp16: reduced precision (bf16 or fp16, whichever the CPU runs natively); False = exact fp32;
            None = the fastest safe one: OpenVINO runs bf16/fp16 where the CPU has it in hardware, for
            our bounded (fp16-safe) x1/x2 models on an 8-bit integer clip (measured: tiny x2 within one
            code value of fp32), else fp32 (see docs/performance.md). Refused for a model that is not fp16-safe,
            or where the backend cannot run it. Frames carry ``ParagonBackend`` and ``ParagonPrecision``.
        threads: CPU threads for inference; 0 = all. CPU backends infer several frames at once
            (``min(core.num_threads, max(2, threads // 4))`` streams sharing the threads), which
            keeps every core busy; ``core.num_threads = 1`` runs one frame at a time on all threads.
        device: GPU index for GPU backends.
        join: how tiles are joined: ``crop`` (exact) or ``blend`` (feathered, smaller overlap).

    Raises:
        vs.Error: ``paragon.Upscale: ...`` naming the bad value and the fix.
    """
    try:
        return _upscale(clip, variant, scale, model, backend, tile, overlap, fp16, threads, device, join)
    except ParagonError as exc:
        raise vs.Error(PREFIX + str(exc)) from None


def _upscale(
    clip: object,
    variant: object,
    scale: object,
    model: object,
    backend: object,
    tile: object,
    overlap: object,
    fp16: object,
    threads: object,
    device: object,
    join: object,
) -> vs.VideoNode:
    if not isinstance(clip, vs.VideoNode):
        raise ConfigError(f"clip must be a video clip, got {type(clip).__name__}")
    fmt = formats.check_format(clip)
    scale_v = _int("scale", scale)
    if scale_v not in SCALES:
        raise ConfigError(f"scale must be one of {', '.join(map(str, SCALES))}, got {scale_v}")
    variant_v = _str("variant", variant)
    model_v = _path("model", model)
    backend_v = _str("backend", backend).strip().lower()
    if backend_v not in backend_names():
        raise ConfigError(f"unknown backend {backend_v!r}; valid backends: {', '.join(backend_names())}")
    join_v = _str("join", join)
    if join_v not in JOINS:
        raise ConfigError(f"join must be 'crop' or 'blend', got {join_v!r}")
    threads_v = _int("threads", threads)
    if not 0 <= threads_v <= 1024:
        raise ConfigError(f"threads must be 0 (all cores) to 1024, got {threads_v}")
    device_v = _int("device", device)
    if device_v < 0:
        raise ConfigError(f"device must be a GPU index >= 0, got {device_v}")
    fp16_v = _flag("fp16", fp16)

    source = resolve(variant=variant_v, scale=scale_v, model=model_v, describe=_describe_foreign)
    name = source.path.name
    streams = auto_streams(threads_v, vs.core.num_threads)
    bits = fmt.bits_per_sample if fmt.sample_type == vs.INTEGER else None
    config = resolve_backend(
        backend_v, source, fp16=fp16_v, threads=threads_v, device=device_v, streams=streams, bits=bits
    )
    if source.kind == "checkpoint" and not config.runs_checkpoints:
        source = _exported(source, fp16=config.fp16)
    session = open_session(config, source)
    plan = plan_frame(
        source.descriptor,
        height=clip.height,
        width=clip.width,
        fp16=config.fp16,
        frames_in_flight=session.max_parallel,
        work_per_channel=session.work_per_channel,
        tile=tile,
        overlap=overlap,
        join=join_v,
    )

    if source.descriptor.global_context and not plan.whole(clip.height, clip.width):
        _say_blended(name, source.descriptor, plan)

    grey = source.descriptor.in_channels == 1  # a grey model runs on one plane of a GRAY clip, else plane by plane
    first = clip.get_frame(0).props  # colour metadata and alpha: rendered once, at creation
    info = formats.color_info(clip, first)
    planes = formats.to_grays(clip, info) if grey and fmt.color_family == vs.GRAY else formats.to_rgbs(clip, info)
    out = _infer_node(planes, session, plan, config.name)
    result = formats.from_rgbs(out, fmt, info)
    if "_Alpha" in first:
        alpha = clip.std.PropToClip("_Alpha")
        alpha_in = formats.to_grays(alpha, _FULL) if grey else formats.to_rgbs(alpha, _FULL)
        alpha_up = formats.from_rgbs(_infer_node(alpha_in, session, plan, config.name), alpha.format, _FULL)
        result = result.std.ClipToProp(alpha_up, "_Alpha")
    return result


_FULL = formats.ColorInfo(matrix="709", full_range=True, chromaloc="left")


def _describe_foreign(path: Path) -> ModelDescriptor:
    """Another project's checkpoint, described by spandrel and a receptive-field probe (cached after the first use)."""
    try:
        from vsparagon.export.cache import foreign_descriptor
    except ImportError as exc:
        raise MissingDependencyError(
            f"{path.name} is another project's checkpoint; loading it needs PyTorch and spandrel "
            f"({exc.name} is missing): pip install 'vsparagon[zoo]'"
        ) from None
    return foreign_descriptor(path)


def _say_blended(name: str, descriptor: ModelDescriptor, plan: TilePlan) -> None:
    """Tell the user (stderr, once per filter) that a global-context model's tiles join approximately."""
    why = descriptor.config.get("reach", "it has global context")
    print(
        f"vsparagon: {PREFIX}{name} has global context ({why}); its tiles of {plan.tile_w}x{plan.tile_h} are "
        f"joined with blending (overlap {plan.overlap}), close to but not the whole-frame result: pass a tile "
        "as large as the frame to run it whole",
        file=sys.stderr,
    )


def _exported(source: ModelSource, *, fp16: bool) -> ModelSource:
    """The checkpoint as an ONNX file (exported once into the cache): the export step needs PyTorch."""
    try:
        from vsparagon.export.cache import exported_onnx
    except ImportError as exc:
        raise MissingDependencyError(
            f"running the checkpoint {source.path.name} on an ONNX backend needs PyTorch to export it "
            f"({exc.name} is missing): pip install 'vsparagon[export]', or run "
            f"`paragon export {source.path.name} -o model.onnx` elsewhere and pass model='model.onnx'"
        ) from None
    return open_model(exported_onnx(source.path, identity=source.identity, fp16=fp16))


def _infer_node(rgb: vs.VideoNode, session: Session, plan: TilePlan, backend: str) -> vs.VideoNode:
    """A node whose frame n is the model's output for frame n of the RGBS (or GRAYS) clip ``rgb``.

    ``std.ModifyFrame`` runs its callback for one frame at a time, so a session that
    takes ``k`` concurrent calls gets ``k`` callback nodes, node ``i`` serving frames
    ``i, i+k, ...``, interleaved back into order: ``k`` frames infer at once.
    """
    k = min(session.max_parallel, rgb.num_frames)
    if k <= 1:
        return _serial_infer_node(rgb, session, plan, backend)
    parts = [
        _serial_infer_node(
            rgb.std.SelectEvery(cycle=k, offsets=[i], modify_duration=False),
            session,
            plan,
            backend,
            first=i,
            step=k,
        )
        for i in range(k)
    ]
    return vs.core.std.Interleave(parts, extend=True, modify_duration=False)[: rgb.num_frames]


def _serial_infer_node(
    rgb: vs.VideoNode, session: Session, plan: TilePlan, backend: str, *, first: int = 0, step: int = 1
) -> vs.VideoNode:
    """:func:`_infer_node` for one frame at a time; frame n here is frame ``first + n * step`` of the clip.

    Each frame says what made it: ``ParagonBackend`` and ``ParagonPrecision`` (as the runtime ran it).
    """
    s = session.scale
    blank = vs.core.std.BlankClip(rgb, width=rgb.width * s, height=rgb.height * s, keep=True)

    def infer_frame(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        try:
            return run_frame(f[0], f[1])
        except Exception as exc:  # a frame error for this frame only; vspipe reports it and stops cleanly
            reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise vs.Error(f"{PREFIX}frame {first + n * step}: inference failed: {reason}") from None

    count = rgb.format.num_planes  # 3 (RGBS), or 1 (GRAYS for a grey model)

    def run_frame(src: vs.VideoFrame, canvas: vs.VideoFrame) -> vs.VideoFrame:
        image = np.stack([np.asarray(src[p]) for p in range(count)])  # (C, H, W) float32
        frame = canvas.copy()
        planes = [np.asarray(frame[p]) for p in range(count)]  # writable views of the new frame
        plan.run_into(image, session.run, planes, scale=s)
        frame.props.clear()
        frame.props.update(src.props)
        frame.props["ParagonBackend"] = backend
        frame.props["ParagonPrecision"] = session.precision
        return frame

    return vs.core.std.ModifyFrame(blank, [rgb, blank], infer_frame)


def _int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _flag(name: str, value: object) -> bool | None:
    """None -> None (the default), False/0 -> False, True/1 -> True (VapourSynth passes booleans as 0/1)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | np.integer) and int(value) in (0, 1):
        return bool(value)
    raise ConfigError(f"{name} must be True/False (or 1/0), got {value!r}")


def _str(name: str, value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {value!r}")
    return value


def _path(name: str, value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        return str(os.fspath(value))
    text = _str(name, value)
    return text or None
