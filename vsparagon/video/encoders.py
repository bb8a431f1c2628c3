"""Encoders and containers ``paragon upscale`` knows, with their defaults and what they accept.

Adding an encoder is adding an entry to :data:`ENCODERS`; adding a container, one to
:data:`CONTAINERS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vsparagon.errors import ConfigError

_YUV8 = ("yuv420p", "yuv422p", "yuv444p", "gray")
_YUV10 = ("yuv420p10le", "yuv422p10le", "yuv444p10le", "gray10le")
_YUV12 = ("yuv420p12le", "yuv422p12le", "yuv444p12le", "gray12le")


@dataclass(frozen=True, kw_only=True)
class Encoder:
    """One ``--encoder`` choice."""

    name: str
    """The ``--encoder`` value."""
    codec: str
    """ffmpeg's encoder name."""
    crf: int | None
    """Default ``-crf``; None for a lossless encoder (``--crf`` is then refused)."""
    crf_max: int = 51
    """Largest accepted ``--crf`` (0 is the smallest)."""
    preset: str | None = None
    """Default ``-preset``; None when the encoder has none (``--preset`` is then refused)."""
    presets: tuple[str, ...] = ()
    """Accepted ``--preset`` values."""
    pix_fmts: tuple[str, ...]
    """Pixel formats it encodes; another source format is converted to :attr:`fallback`."""
    fallback: tuple[str, str]
    """Pixel format for other sources: (8-bit source, deeper source)."""
    extra: tuple[str, ...] = ()
    """Further output options, always passed."""


_X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


def _x26x(number: str, *, crf: int, pix_fmts: tuple[str, ...], extra: tuple[str, ...] = ()) -> Encoder:
    """x264 or x265: the same presets, CRF scale and fallbacks."""
    return Encoder(
        name=f"x{number}",
        codec=f"libx{number}",
        crf=crf,
        preset="medium",
        presets=(*_X26X_PRESETS, "placebo"),
        pix_fmts=pix_fmts,
        fallback=("yuv420p", "yuv420p10le"),
        extra=extra,
    )


ENCODERS: dict[str, Encoder] = {
    e.name: e
    for e in (
        _x26x("264", crf=18, pix_fmts=_YUV8 + _YUV10),
        _x26x("265", crf=20, pix_fmts=_YUV8 + _YUV10 + _YUV12, extra=("-x265-params", "log-level=error")),
        Encoder(
            name="av1",
            codec="libsvtav1",
            crf=30,
            crf_max=63,
            preset="8",
            presets=tuple(str(p) for p in range(14)),
            pix_fmts=("yuv420p", "yuv420p10le"),
            fallback=("yuv420p", "yuv420p10le"),
        ),
        Encoder(
            name="vp9",
            codec="libvpx-vp9",
            crf=31,
            crf_max=63,
            pix_fmts=("yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le"),
            fallback=("yuv420p", "yuv420p10le"),
            extra=("-b:v", "0", "-row-mt", "1"),
        ),
        Encoder(
            name="ffv1",
            codec="ffv1",
            crf=None,
            pix_fmts=(*_YUV8, *_YUV10, *_YUV12, "yuv420p16le", "yuv422p16le", "yuv444p16le", "gray16le"),
            fallback=("yuv444p", "yuv444p16le"),
            extra=("-level", "3", "-slicecrc", "1"),
        ),
    )
}

#: Text subtitle codecs (convertible between containers) and bitmap ones (copied or dropped).
TEXT_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"})


@dataclass(frozen=True, kw_only=True)
class Container:
    """An output container, chosen by the output file's extension."""

    muxer: str
    """ffmpeg's muxer (``-f``)."""
    encoders: tuple[str, ...]
    """``--encoder`` values it can hold."""
    audio_copy: frozenset[str] | None
    """Audio codecs copied as they are (None = any); others are re-encoded with :attr:`audio_codec`."""
    audio_codec: tuple[str, ...]
    """Encoder options for audio that cannot be copied."""
    text_subtitles: str | None
    """Codec text subtitles are written in (None = copied as they are)."""
    bitmap_subtitles: bool
    """Whether bitmap subtitles (PGS, DVD) can be copied; else they are dropped with a note."""


_ALL = tuple(ENCODERS)
_MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "flac", "opus", "mp2"})
_MATROSKA = Container(
    muxer="matroska",
    encoders=_ALL,
    audio_copy=None,
    audio_codec=("aac", "-b:a", "192k"),
    text_subtitles=None,
    bitmap_subtitles=True,
)
_MP4 = Container(
    muxer="mp4",
    encoders=("x264", "x265", "av1", "vp9"),
    audio_copy=_MP4_AUDIO,
    audio_codec=("aac", "-b:a", "192k"),
    text_subtitles="mov_text",
    bitmap_subtitles=False,
)
CONTAINERS: dict[str, Container] = {
    ".mkv": _MATROSKA,
    ".mp4": _MP4,
    ".m4v": _MP4,
    ".mov": Container(
        muxer="mov",
        encoders=("x264", "x265"),
        audio_copy=_MP4_AUDIO,
        audio_codec=("aac", "-b:a", "192k"),
        text_subtitles="mov_text",
        bitmap_subtitles=False,
    ),
    ".webm": Container(
        muxer="webm",
        encoders=("av1", "vp9"),
        audio_copy=frozenset({"opus", "vorbis"}),
        audio_codec=("libopus", "-b:a", "128k"),
        text_subtitles="webvtt",
        bitmap_subtitles=False,
    ),
}


def encoder(name: str) -> Encoder:
    """The encoder called ``name``.

    Raises:
        ConfigError: an unknown name, with the list of choices.
    """
    found = ENCODERS.get(name.strip().lower())
    if found is None:
        raise ConfigError(f"unknown encoder {name!r}; choose one of: {', '.join(ENCODERS)}")
    return found


def container(path: Path, chosen: Encoder) -> Container:
    """The container for output ``path`` (by extension), checked against ``chosen``.

    Raises:
        ConfigError: an unknown extension, or an encoder that container cannot hold.
    """
    suffix = path.suffix.lower()
    found = CONTAINERS.get(suffix)
    if found is None:
        raise ConfigError(
            f"output {str(path)!r}: unknown container {suffix or '(no extension)'!r}; "
            f"use one of: {', '.join(CONTAINERS)}"
        )
    if chosen.name not in found.encoders:
        raise ConfigError(
            f"--encoder {chosen.name} cannot go in a {suffix} file; with {suffix} use "
            f"{', '.join(found.encoders)}, or write .mkv"
        )
    return found


def quality_options(chosen: Encoder, crf: int | None, preset: str | None) -> list[str]:
    """``-crf``/``-preset`` options for ``chosen``, defaults filled in and values checked.

    Raises:
        ConfigError: ``--crf`` or ``--preset`` out of range, or given to an encoder without one.
    """
    options: list[str] = []
    if chosen.crf is None:
        if crf is not None:
            raise ConfigError(f"--encoder {chosen.name} is lossless and takes no --crf")
    else:
        value = chosen.crf if crf is None else crf
        if not 0 <= value <= chosen.crf_max:
            raise ConfigError(f"--crf for {chosen.name} must be 0 to {chosen.crf_max}, got {value}")
        options += ["-crf", str(value)]
    if chosen.preset is None:
        if preset is not None:
            raise ConfigError(f"--encoder {chosen.name} takes no --preset")
    else:
        value_p = chosen.preset if preset is None else preset
        if value_p not in chosen.presets:
            raise ConfigError(f"--preset for {chosen.name} must be one of {', '.join(chosen.presets)}, got {value_p!r}")
        options += ["-preset", value_p]
    return options


def y4m_pix_fmt(*, gray: bool, sub_w: int, sub_h: int, bits: int) -> str:
    """ffmpeg's name of the pixel format VapourSynth's y4m output carries."""
    depth = "" if bits == 8 else f"{bits}le"
    if gray:
        return "gray" + depth
    layout = {(0, 0): "444", (1, 0): "422", (1, 1): "420", (2, 0): "411", (2, 2): "410"}.get((sub_w, sub_h), "444")
    return f"yuv{layout}p{depth}"


def pix_fmt_for(chosen: Encoder, source: str) -> str:
    """``source`` when ``chosen`` encodes it, else the encoder's fallback for its bit depth."""
    if source in chosen.pix_fmts:
        return source
    return chosen.fallback[0 if source in ("yuv420p", "yuv422p", "yuv444p", "gray", "yuv411p", "yuv410p") else 1]
