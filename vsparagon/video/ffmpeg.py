"""The ffmpeg side of ``paragon upscale``: finding the binary, reading a file's streams, the command line.

imageio-ffmpeg ships ffmpeg without ffprobe, so streams are read from ``ffmpeg -i FILE``.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vsparagon.errors import InputError, MissingDependencyError
from vsparagon.video.colour import ColourTags
from vsparagon.video.encoders import TEXT_SUBTITLES, Container, Encoder

StreamKind = Literal["video", "audio", "subtitle", "data", "attachment"]
_STREAM = re.compile(
    r"^\s*Stream #0:(?P<index>\d+)(?:\[[^\]]*\])?(?:\([^)]*\))?: "
    r"(?P<kind>Video|Audio|Subtitle|Data|Attachment): (?P<codec>[\w-]+)",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Stream:
    """One stream of a media file, as ``ffmpeg -i`` lists it."""

    index: int
    """Index in the file (``-map 1:INDEX``)."""
    kind: StreamKind
    codec: str
    """ffmpeg's codec name (``aac``, ``subrip``, ...)."""


def ffmpeg_exe() -> str:
    """The ffmpeg binary bundled by imageio-ffmpeg."""
    try:
        import imageio_ffmpeg
    except ImportError:
        raise MissingDependencyError("paragon upscale needs ffmpeg: pip install 'vsparagon[video]'") from None
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def parse_streams(listing: str) -> list[Stream]:
    """Streams of input #0 from ``ffmpeg -i`` output (stderr)."""
    found = []
    for m in _STREAM.finditer(listing):
        kind: StreamKind = m["kind"].lower()  # type: ignore[assignment]
        found.append(Stream(index=int(m["index"]), kind=kind, codec=m["codec"]))
    return found


def probe(ffmpeg: str, path: Path) -> list[Stream]:
    """The streams of ``path``.

    Raises:
        InputError: ffmpeg cannot read it, or it has no video stream.
    """
    done = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True, text=True, errors="replace"
    )
    streams = parse_streams(done.stderr)
    if not streams:
        lines = [line.strip() for line in done.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit code {done.returncode}"
        raise InputError(f"input {str(path)!r} is not a readable media file (ffmpeg: {reason})")
    if not any(s.kind == "video" for s in streams):
        raise InputError(f"input {str(path)!r} has no video stream")
    return streams


@dataclass(frozen=True, kw_only=True)
class EncodeJob:
    """Everything the ffmpeg command line depends on."""

    source: Path
    """The original input: audio and subtitles are taken from it."""
    target: Path
    """The file ffmpeg writes (a temporary name next to the final one)."""
    container: Container
    encoder: Encoder
    quality: Sequence[str]
    """``-crf``/``-preset`` options (see :func:`vsparagon.video.encoders.quality_options`)."""
    pix_fmt: str
    colour: ColourTags
    streams: Sequence[Stream]
    """The source's streams."""
    start_s: float = 0.0
    """Where the kept frames start in the source, in seconds (audio and subtitles are cut to match)."""
    duration_s: float | None = None
    """How long the kept frames last; None = to the end."""


def build_command(ffmpeg: str, job: EncodeJob) -> tuple[list[str], list[str]]:
    """The ffmpeg command that reads y4m on stdin and writes ``job.target``.

    Audio is copied when the container takes its codec, else re-encoded; text
    subtitles are converted to the container's text codec where it needs one;
    bitmap subtitles a container cannot hold are dropped. When frames are trimmed,
    the source is opened at ``start_s`` for ``duration_s`` seconds: copied audio is
    then cut at packet boundaries (within one packet, ~21 ms for AAC).

    Returns:
        The argument list, and notes for the user (streams dropped or converted).
    """
    notes: list[str] = []
    kept: list[tuple[Stream, list[str]]] = []
    for stream in job.streams:
        if stream.kind == "audio":
            kept.append((stream, _audio_codec(job.container, stream)))
        elif stream.kind == "subtitle":
            codec = _subtitle_codec(job.container, stream)
            if codec is None:
                notes.append(
                    f"dropped subtitle stream {stream.index} ({stream.codec}): a .{job.container.muxer} file "
                    "cannot hold bitmap subtitles; write .mkv to keep it"
                )
            else:
                kept.append((stream, codec))
    cmd = [ffmpeg, "-hide_banner", "-nostats", "-loglevel", "error", "-y", "-f", "yuv4mpegpipe", "-i", "pipe:0"]
    trimmed = job.start_s > 0 or job.duration_s is not None
    if kept:
        if job.start_s > 0:
            cmd += ["-ss", f"{job.start_s:.6f}"]
        if job.duration_s is not None:
            cmd += ["-t", f"{job.duration_s:.6f}"]
        cmd += ["-i", str(job.source), "-map_metadata", "1", "-map_chapters", "-1" if trimmed else "1"]
    cmd += ["-map", "0:v:0"]
    for stream, _ in kept:
        cmd += ["-map", f"1:{stream.index}"]
    setparams = job.colour.setparams()
    if setparams:
        cmd += ["-vf", setparams]
    cmd += ["-c:v", job.encoder.codec, *job.quality, "-pix_fmt", job.pix_fmt, *job.encoder.extra]
    cmd += job.colour.output_options()
    counts = {"audio": 0, "subtitle": 0}
    for stream, codec in kept:
        kind = "a" if stream.kind == "audio" else "s"
        n = counts[stream.kind]
        counts[stream.kind] += 1
        cmd += [f"-c:{kind}:{n}", codec[0]]
        for flag, value in zip(codec[1::2], codec[2::2], strict=True):
            cmd += [f"{flag}:{n}", value]
        if codec[0] != "copy" and stream.kind == "subtitle":
            notes.append(f"converted subtitle stream {stream.index} ({stream.codec}) to {codec[0]}")
    if job.container.muxer in ("mp4", "mov"):
        cmd += ["-movflags", "+faststart"]
    cmd += ["-f", job.container.muxer, str(job.target)]
    return cmd, notes


def _audio_codec(container: Container, stream: Stream) -> list[str]:
    if container.audio_copy is None or stream.codec in container.audio_copy:
        return ["copy"]
    return list(container.audio_codec)


def _subtitle_codec(container: Container, stream: Stream) -> list[str] | None:
    """Codec options for a subtitle stream, or None when it must be dropped."""
    text = stream.codec in TEXT_SUBTITLES
    if not text:
        return ["copy"] if container.bitmap_subtitles else None
    if container.text_subtitles is None:  # Matroska: copy, but it has no mov_text
        return ["srt"] if stream.codec == "mov_text" else ["copy"]
    return ["copy"] if stream.codec == container.text_subtitles else [container.text_subtitles]
