"""A video file through bestsource, ``core.paragon.Upscale`` and a pipe into ffmpeg (VapourSynth layer).

The frames go to ffmpeg as y4m on its stdin from this process (``clip.output``);
ffmpeg writes a temporary file next to the output, which is renamed only when
everything succeeded. Any failure or interruption kills ffmpeg and deletes it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import vapoursynth as vs

import vsparagon.plugin  # noqa: F401  (OpenVINO before the core; registers core.paragon)
from vsparagon._files import cache_dir
from vsparagon.errors import ConfigError, InputError, MissingDependencyError, ParagonError
from vsparagon.runtime.source import ort_reason
from vsparagon.video import encoders, ffmpeg
from vsparagon.video.colour import tags_from_props
from vsparagon.video.progress import Progress
from vsparagon.video.trim import parse_frames, time_span


class EncodeError(ParagonError):
    """ffmpeg failed while writing the output."""


@dataclass(frozen=True, kw_only=True)
class UpscaleJob:
    """What ``paragon upscale`` was asked to do."""

    source: Path
    output: Path
    variant: str = "tiny"
    scale: int = 2
    model: str | None = None
    backend: str = "auto"
    tile: int = 0
    encoder: str = "x264"
    crf: int | None = None
    preset: str | None = None
    frames: str | None = None
    """``START:END`` or None for all."""


@dataclass(frozen=True)
class Result:
    """What was written."""

    path: Path
    frames: int
    width: int
    height: int
    seconds: float
    notes: list[str]


def partial_path(output: Path) -> Path:
    """The temporary name ffmpeg writes to: ``name.partial.ext`` next to ``output``."""
    return output.with_name(f"{output.stem}.partial{output.suffix}")


def check_paths(source: Path, output: Path) -> None:
    """Reject a missing input, an output that is the input, or an output folder that cannot be written.

    Raises:
        InputError: with the path and the fix.
    """
    if not source.exists():
        raise InputError(f"input {str(source)!r} does not exist")
    if not source.is_file():
        raise InputError(f"input {str(source)!r} is not a file")
    if output.exists() and output.resolve() == source.resolve():
        raise InputError("output and input are the same file; choose another output name")
    if output.is_dir():
        raise InputError(f"output {str(output)!r} is a folder; give a file name such as out.mkv")
    folder = output.parent
    if not folder.is_dir():
        raise InputError(f"output folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"output folder {str(folder)!r} is not writable")


def open_source(path: Path) -> vs.VideoNode:
    """The first video track of ``path`` through bestsource, indexed into vsparagon's cache folder."""
    core = vs.core
    if not hasattr(core, "bs"):
        raise MissingDependencyError("paragon upscale needs bestsource: pip install 'vsparagon[video]'")
    index = cache_dir() / "bsindex"
    index.mkdir(parents=True, exist_ok=True)
    try:
        # cachemode 1: index files under cachepath (not next to the input), written when they save time.
        return core.bs.VideoSource(str(path), cachemode=1, cachepath=str(index))
    except vs.Error as exc:
        raise InputError(f"cannot decode {str(path)!r}: {_first_line(exc)}") from None


def upscale_file(job: UpscaleJob) -> Result:
    """Run ``job`` end to end; progress goes to stderr.

    Raises:
        ParagonError: bad input or settings (before anything is written), or ffmpeg failing.
        KeyboardInterrupt: interrupted; the temporary file is gone and the output untouched.
    """
    check_paths(job.source, job.output)
    chosen = encoders.encoder(job.encoder)
    container = encoders.container(job.output, chosen)
    quality = encoders.quality_options(chosen, job.crf, job.preset)
    exe = ffmpeg.ffmpeg_exe()
    streams = ffmpeg.probe(exe, job.source)

    source = open_source(job.source)
    start, end = parse_frames(job.frames, source.num_frames)
    clip = source[start:end]
    tags = tags_from_props(clip.get_frame(0).props)
    try:
        clip = vs.core.paragon.Upscale(
            clip, variant=job.variant, scale=job.scale, model=job.model, backend=job.backend, tile=job.tile
        )
    except vs.Error as exc:
        raise ConfigError(_first_line(exc).removeprefix("paragon.Upscale: ")) from None
    fmt = clip.format
    if fmt.color_family == vs.RGB or fmt.sample_type == vs.FLOAT:  # y4m carries YUV and GRAY integer only
        bits = min(max(fmt.bits_per_sample, 8), 16) if fmt.sample_type == vs.INTEGER else 16
        clip = clip.resize.Bicubic(format=vs.core.query_video_format(vs.YUV, vs.INTEGER, bits, 0, 0).id, matrix_s="709")
        tags = dataclasses.replace(tags, matrix="bt709", range="tv")
        fmt = clip.format
    y4m = encoders.y4m_pix_fmt(
        gray=fmt.color_family == vs.GRAY, sub_w=fmt.subsampling_w, sub_h=fmt.subsampling_h, bits=fmt.bits_per_sample
    )
    begin, duration = time_span(start, end, source.num_frames, Fraction(source.fps_num, source.fps_den))
    partial = partial_path(job.output)
    command, notes = ffmpeg.build_command(
        exe,
        ffmpeg.EncodeJob(
            source=job.source,
            target=partial,
            container=container,
            encoder=chosen,
            quality=quality,
            pix_fmt=encoders.pix_fmt_for(chosen, y4m),
            colour=tags,
            streams=streams,
            start_s=begin,
            duration_s=duration,
        ),
    )
    for note in notes:
        print(f"paragon upscale: {note}", file=sys.stderr)
    seconds = _encode(clip, command, partial, job.output)
    return Result(
        path=job.output, frames=clip.num_frames, width=clip.width, height=clip.height, seconds=seconds, notes=notes
    )


def _encode(clip: vs.VideoNode, command: list[str], partial: Path, output: Path) -> float:
    """Pipe ``clip`` into ``command`` (which writes ``partial``), then rename ``partial`` to ``output``."""
    progress = Progress("paragon upscale")
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
        pipe = proc.stdin
        try:
            if pipe is None:  # never: stdin=PIPE
                raise EncodeError("could not open a pipe to ffmpeg")
            try:
                clip.output(pipe, y4m=True, progress_update=progress.update)
                pipe.close()
            except BrokenPipeError:  # ffmpeg stopped reading: its exit code and log say why
                with contextlib.suppress(OSError):
                    pipe.close()
            except vs.Error as exc:
                raise EncodeError(f"a frame failed: {frame_error(exc)}") from None
            code = proc.wait()
            seconds = progress.finish()
            if code != 0:
                log.seek(0)
                lines = [x for x in log.read().decode("utf-8", "replace").splitlines() if x.strip()]
                raise EncodeError(f"ffmpeg failed (exit {code}): {lines[-1].strip() if lines else 'no message'}")
            os.replace(partial, output)
            return seconds
        except BaseException:
            progress.finish()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            partial.unlink(missing_ok=True)
            raise


def frame_error(exc: BaseException) -> str:
    """The message of a frame error, without the traceback text VapourSynth wraps around it."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("vapoursynth.Error: "):
            return ort_reason(line.removeprefix("vapoursynth.Error: "))
    return ort_reason(lines[-1]) if lines else type(exc).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
