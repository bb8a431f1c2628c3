"""``paragon.Upscale``: the VapourSynth filter, all in Python.

The work per frame is: RGBS planes -> (3, H, W) float32 -> tiled inference
(GIL released inside the runtime) -> planes of a new RGBS frame. Everything
around it (format conversion, validation, session sharing) happens once, when
the filter is created, so a bad parameter fails the script, not a frame.

A half-float clip (RGBH, YUV444PH, GRAYH) on a session that takes fp16 travels as RGBH
(or GRAYH) both ways, with no conversion to fp32; every other clip travels as RGBS, so a
clip deeper than 10 bits never has the model's output rounded to half on its way back.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import vapoursynth as vs

from vsparagon.catalogue import SCALES, ModelDescriptor
from vsparagon.errors import ConfigError, MissingDependencyError, ParagonError
from vsparagon.plugin import formats
from vsparagon.runtime.backends import Backend, BackendError, Session, backend_names
from vsparagon.runtime.backends.gpu_common import DEFAULT_GPU_STREAMS
from vsparagon.runtime.backends.torch_backend import TorchBackend
from vsparagon.runtime.policy import JOINS, TilePlan, auto_streams, plan_frame
from vsparagon.runtime.sessions import auto_candidates, open_session, resolve_backend, say_auto_skip
from vsparagon.runtime.source import ModelSource, open_model, resolve

PREFIX = "paragon.Upscale: "
#: What ``precision=`` takes.
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
#: The most frames ``num_streams`` may keep in flight.
MAX_STREAMS = 16


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
    join: str | None = None,
    precision: str = "auto",
    num_streams: int = 0,
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
        join: how tiles are joined: ``crop`` (exact) or ``blend`` (feathered, smaller overlap); None = ``crop``,
            except for a model with global context, whose tiles can only blend (it says so); asking such a
            model for ``crop`` tiles is refused.
        precision: what the model computes in: ``auto`` (what ``fp16`` says, or the backend's default: on a GPU
            fp16 for fp16-safe models, checked on a test pattern when the model loads), ``fp32``, ``fp16``
            (``fp16=True``), or ``bf16`` (backend ``torch`` on a GPU of compute capability 8.0+: fp32's range,
            so also for models that are not fp16-safe). One that contradicts ``fp16`` is refused.
        num_streams: frames inferred at once, each with its own instance (on a GPU: its own CUDA stream,
            context and buffers, so one frame's copies overlap another's compute); 0 = automatic:
            2 on a GPU, on a CPU as ``threads`` says.

    Raises:
        vs.Error: ``paragon.Upscale: ...`` naming the bad value and the fix.
    """
    try:
        return _upscale(
            clip, variant, scale, model, backend, tile, overlap, fp16, threads, device, join, precision, num_streams
        )
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
    precision: object = "auto",
    num_streams: object = 0,
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
    join_v = "crop" if join is None else _str("join", join)
    if join_v not in JOINS:
        raise ConfigError(f"join must be 'crop' or 'blend', got {join_v!r}")
    threads_v = _int("threads", threads)
    if not 0 <= threads_v <= 1024:
        raise ConfigError(f"threads must be 0 (all cores) to 1024, got {threads_v}")
    device_v = _int("device", device)
    if device_v < 0:
        raise ConfigError(f"device must be a GPU index >= 0, got {device_v}")
    fp16_v = _flag("fp16", fp16)
    precision_v = _str("precision", precision).strip().lower()
    half_v = _half(precision_v, fp16_v)
    streams_v = _int("num_streams", num_streams)
    if not 0 <= streams_v <= MAX_STREAMS:
        raise ConfigError(f"num_streams must be 0 (automatic) to {MAX_STREAMS}, got {streams_v}")

    source = resolve(variant=variant_v, scale=scale_v, model=model_v, describe=_describe_foreign)
    name = source.path.name
    bits = fmt.bits_per_sample if fmt.sample_type == vs.INTEGER else None
    # auto: the fastest usable backend; one that fails to open (a GPU runtime whose CUDA libraries do not load,
    # a model TensorRT cannot build) gives way to the next, with one line on stderr
    candidates = auto_candidates(source) if backend_v == "auto" else [backend_v]
    for i, chosen in enumerate(candidates):
        try:
            config, source, session = _open(
                chosen, source, half_v, streams_v=streams_v, threads=threads_v, device=device_v, bits=bits
            )
            break
        except (BackendError, MissingDependencyError) as exc:
            if i == len(candidates) - 1:
                raise
            say_auto_skip(chosen, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    plan = plan_frame(
        source.descriptor,
        height=clip.height,
        width=clip.width,
        fp16=config.fp16 and session.precision != "fp32",  # as it runs (a GPU session may have fallen back)
        frames_in_flight=session.max_parallel,
        budget_bytes=session.budget_bytes,
        work_per_channel=session.work_per_channel,
        tile=tile,
        overlap=overlap,
        join=join_v,
    )

    if source.descriptor.global_context and not plan.whole(clip.height, clip.width):
        if join is not None and join_v == "crop":
            raise ConfigError(_no_exact_tiles(name, plan, clip.width, clip.height, tiled=_given(tile)))
        _say_blended(name, source.descriptor, plan)

    grey = source.descriptor.in_channels == 1  # a grey model runs on one plane of a GRAY clip, else plane by plane
    first = clip.get_frame(0).props  # colour metadata and alpha: rendered once, at creation
    info = formats.color_info(clip, first)
    half = _travels_half(fmt, session)
    if grey and fmt.color_family == vs.GRAY:
        planes = formats.to_grays(clip, info, half=half)
    else:
        planes = formats.to_rgbs(clip, info, half=half)
    out = _infer_node(planes, session, plan, config.name)
    result = formats.from_rgbs(out, fmt, info)
    if "_Alpha" in first:
        alpha = clip.std.PropToClip("_Alpha")
        half = _travels_half(alpha.format, session)
        alpha_in = formats.to_grays(alpha, _FULL, half=half) if grey else formats.to_rgbs(alpha, _FULL, half=half)
        alpha_up = formats.from_rgbs(_infer_node(alpha_in, session, plan, config.name), alpha.format, _FULL)
        result = result.std.ClipToProp(alpha_up, "_Alpha")
    return result


def _open(
    backend: str,
    source: ModelSource,
    half: str | None,
    *,
    streams_v: int,
    threads: int,
    device: int,
    bits: int | None,
) -> tuple[Backend, ModelSource, Session]:
    """The backend config for ``backend`` (not ``auto``), the source it runs (a checkpoint exported for an
    ONNX backend) and its shared session."""
    config = resolve_backend(
        backend,
        source,
        fp16=None if half is None else half == "fp16",
        threads=threads,
        device=device,
        streams=streams_v or auto_streams(threads, vs.core.num_threads),
        bits=bits,
    )
    if half == "bf16":
        config = _bf16(config)
    if not streams_v and config.on_gpu():
        config = dataclasses.replace(config, streams=DEFAULT_GPU_STREAMS)
    if source.kind == "checkpoint" and not config.runs_checkpoints:
        source = _exported(source, fp16=config.fp16)
    return config, source, open_session(config, source)


_FULL = formats.ColorInfo(matrix="709", full_range=True, chromaloc="left")


def _half(precision: str, fp16: bool | None) -> str | None:
    """``precision=`` and ``fp16=`` as one choice: None (the backend's default), ``fp32``, ``fp16`` or ``bf16``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")
    if precision == "auto":
        return None if fp16 is None else ("fp16" if fp16 else "fp32")
    if fp16 is not None and fp16 != (precision != "fp32"):
        raise ConfigError(f"precision={precision!r} and fp16={fp16} disagree; pass only one of them")
    return precision


def _bf16(config: Backend) -> Backend:
    """``config`` computing in bfloat16 (only backend='torch' offers it)."""
    if not isinstance(config, TorchBackend):
        raise ConfigError(
            f"precision='bf16' runs on backend='torch' (a GPU of compute capability 8.0 or newer), not "
            f"{config.name!r}; use precision='fp16' (OpenVINO computes it in bf16 where the CPU has bf16) or 'fp32'"
        )
    return dataclasses.replace(config, fp16=True, half="bf16")


def _travels_half(fmt: vs.VideoFormat, session: Session) -> bool:
    """Whether frames of ``fmt`` go to and from ``session`` as half floats: a half-float clip on a session
    that takes fp16 (no conversion either way); everything else travels as fp32."""
    return fmt.sample_type == vs.FLOAT and fmt.bits_per_sample == 16 and session.input_dtype == np.float16


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
    why = descriptor.config.get("reach", "every output pixel depends on the whole frame")
    print(
        f"vsparagon: {PREFIX}{name} has global context ({why}); its tiles of {plan.tile_w}x{plan.tile_h} are "
        f"joined with blending (overlap {plan.overlap}), close to but not the whole-frame result: pass a tile "
        "as large as the frame to run it whole",
        file=sys.stderr,
    )


def _given(tile: object) -> bool:
    """Whether ``tile`` names a size (not 0 or all zeros, the automatic choice)."""
    sizes = list(tile) if isinstance(tile, list | tuple) else [tile]
    return any(t != 0 for t in sizes)


def _no_exact_tiles(name: str, plan: TilePlan, width: int, height: int, *, tiled: bool) -> str:
    """Why ``join='crop'`` cannot tile a global-context model, and what to pass instead."""
    whole = (
        f"tile=0 (the whole {width}x{height} frame when it fits the memory budget)"
        if tiled
        else f"a frame smaller than {width}x{height}, or more memory (the whole frame does not fit the budget)"
    )
    return (
        f"join='crop' asks for exact tiles, but {name} has global context: every output pixel depends on the "
        f"whole frame, so no overlap makes {plan.tile_w}x{plan.tile_h} tiles exact. Run it whole ({whole}), "
        "or pass join='blend' to tile it approximately"
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
    """A node whose frame n is the model's output for frame n of the RGBS (or GRAYS, RGBH, GRAYH) clip ``rgb``.

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

    count = rgb.format.num_planes  # 3 (RGBS/RGBH), or 1 (GRAYS/GRAYH for a grey model)

    def run_frame(src: vs.VideoFrame, canvas: vs.VideoFrame) -> vs.VideoFrame:
        image = np.stack([np.asarray(src[p]) for p in range(count)])  # (C, H, W) float32 (float16: RGBH)
        frame = canvas.copy()
        planes = [np.asarray(frame[p]) for p in range(count)]  # writable views of the new frame
        session.run_frame_into(image, plan, planes)
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
