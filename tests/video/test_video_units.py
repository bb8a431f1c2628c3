"""Pure pieces of ``paragon upscale``: colour tags, encoders, containers, the ffmpeg command, --frames, progress."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import pytest
import vapoursynth as vs

from vsparagon.errors import ConfigError
from vsparagon.video import encoders
from vsparagon.video.colour import ColourTags, tags_from_props
from vsparagon.video.ffmpeg import EncodeJob, Stream, build_command, parse_streams
from vsparagon.video.progress import Progress, format_progress, format_seconds
from vsparagon.video.trim import parse_frames, time_span


def test_colour_tags_from_r81_props():
    props = {"_Matrix": 1, "_Primaries": 1, "_Transfer": 1, "_Range": vs.RANGE_LIMITED}
    assert tags_from_props(props) == ColourTags("bt709", "bt709", "bt709", "tv")
    hdr = {"_Matrix": 9, "_Primaries": 9, "_Transfer": 16, "_Range": vs.RANGE_FULL}
    assert tags_from_props(hdr) == ColourTags("bt2020nc", "bt2020", "smpte2084", "pc")


def test_unspecified_colour_is_left_out():
    tags = tags_from_props({"_Matrix": 2, "_Primaries": 2, "_Transfer": 2})
    assert tags == ColourTags()
    assert tags.setparams() is None
    assert tags.output_options() == []


def test_old_color_range_is_inverted():
    assert tags_from_props({"_ColorRange": 0}).range == "pc"
    assert tags_from_props({"_ColorRange": 1}).range == "tv"


def test_colour_options():
    tags = ColourTags(matrix="smpte170m", range="pc")
    assert tags.setparams() == "setparams=colorspace=smpte170m:range=pc"
    assert tags.output_options() == ["-colorspace", "smpte170m", "-color_range", "pc"]


def test_unknown_encoder_lists_choices():
    with pytest.raises(ConfigError, match=r"unknown encoder 'h266'; choose one of: x264, x265, av1, vp9, ffv1"):
        encoders.encoder("h266")


@pytest.mark.parametrize(
    ("name", "encoder", "message"),
    [
        ("out.mp4", "ffv1", "--encoder ffv1 cannot go in a .mp4 file"),
        ("out.webm", "x264", "--encoder x264 cannot go in a .webm file"),
        ("out.avi", "x264", "unknown container '.avi'; use one of: .mkv, .mp4"),
        ("out", "x264", "unknown container '(no extension)'"),
    ],
)
def test_bad_container_combinations(name, encoder, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
        encoders.container(Path(name), encoders.encoder(encoder))


def test_every_encoder_fits_matroska():
    for chosen in encoders.ENCODERS.values():
        assert encoders.container(Path("a.MKV"), chosen).muxer == "matroska"


def test_quality_defaults_and_limits():
    x264 = encoders.encoder("x264")
    assert encoders.quality_options(x264, None, None) == ["-crf", "18", "-preset", "medium"]
    assert encoders.quality_options(encoders.encoder("av1"), 40, "10") == ["-crf", "40", "-preset", "10"]
    with pytest.raises(ConfigError, match="--crf for x264 must be 0 to 51, got 52"):
        encoders.quality_options(x264, 52, None)
    with pytest.raises(ConfigError, match="--preset for x264 must be one of"):
        encoders.quality_options(x264, None, "warp")
    with pytest.raises(ConfigError, match="ffv1 is lossless and takes no --crf"):
        encoders.quality_options(encoders.encoder("ffv1"), 10, None)
    assert encoders.quality_options(encoders.encoder("ffv1"), None, None) == []


def test_pixel_formats():
    assert encoders.y4m_pix_fmt(gray=False, sub_w=1, sub_h=1, bits=8) == "yuv420p"
    assert encoders.y4m_pix_fmt(gray=False, sub_w=0, sub_h=0, bits=10) == "yuv444p10le"
    assert encoders.y4m_pix_fmt(gray=True, sub_w=0, sub_h=0, bits=16) == "gray16le"
    av1 = encoders.encoder("av1")
    assert encoders.pix_fmt_for(av1, "yuv420p10le") == "yuv420p10le"
    assert encoders.pix_fmt_for(av1, "yuv444p") == "yuv420p"
    assert encoders.pix_fmt_for(av1, "yuv444p12le") == "yuv420p10le"
    assert encoders.pix_fmt_for(encoders.encoder("x264"), "yuv422p") == "yuv422p"


LISTING = """
Input #0, matroska,webm, from 'in.mkv':
  Duration: 00:00:03.00, start: 0.000000, bitrate: 295 kb/s
  Stream #0:0: Video: h264 (High), yuv420p(tv, bt709, progressive), 320x180, 25 fps
  Stream #0:1(eng): Audio: aac (LC), 48000 Hz, stereo, fltp (default)
  Stream #0:2[0x3](eng): Audio: pcm_s16le, 48000 Hz, mono, s16, 768 kb/s
  Stream #0:3(eng): Subtitle: subrip (srt)
  Stream #0:4: Subtitle: hdmv_pgs_subtitle (pgssub), 1920x1080
  Stream #0:5: Attachment: ttf
"""


def test_parse_streams():
    streams = parse_streams(LISTING)
    assert [(s.index, s.kind, s.codec) for s in streams] == [
        (0, "video", "h264"),
        (1, "audio", "aac"),
        (2, "audio", "pcm_s16le"),
        (3, "subtitle", "subrip"),
        (4, "subtitle", "hdmv_pgs_subtitle"),
        (5, "attachment", "ttf"),
    ]


def _command(output: str, encoder: str = "x264", **kwargs) -> tuple[list[str], list[str]]:
    chosen = encoders.encoder(encoder)
    job = EncodeJob(
        source=Path("in.mkv"),
        target=Path(output),
        container=encoders.container(Path(output), chosen),
        encoder=chosen,
        quality=encoders.quality_options(chosen, None, None),
        pix_fmt="yuv420p",
        colour=ColourTags(matrix="bt709", range="tv"),
        streams=parse_streams(LISTING),
        **kwargs,
    )
    return build_command("ffmpeg", job)


def _after(cmd: list[str], flag: str) -> list[str]:
    return [cmd[i + 1] for i, v in enumerate(cmd) if v == flag]


def test_matroska_copies_everything():
    cmd, notes = _command("out.mkv")
    assert cmd[cmd.index("-i") + 1] == "pipe:0"
    assert _after(cmd, "-map") == ["0:v:0", "1:1", "1:2", "1:3", "1:4"]
    assert cmd[-3:] == ["-f", "matroska", "out.mkv"]
    assert cmd[cmd.index("-c:a:0") :][:8] == ["-c:a:0", "copy", "-c:a:1", "copy", "-c:s:0", "copy", "-c:s:1", "copy"]
    assert "setparams=colorspace=bt709:range=tv" in _after(cmd, "-vf")
    assert _after(cmd, "-ss") == []
    assert _after(cmd, "-map_chapters") == ["1"]
    assert notes == []


def test_mp4_converts_audio_and_text_subtitles_and_drops_bitmaps():
    cmd, notes = _command("out.mp4")
    assert _after(cmd, "-map") == ["0:v:0", "1:1", "1:2", "1:3"]
    assert _after(cmd, "-c:a:0") == ["copy"]  # aac fits mp4
    assert _after(cmd, "-c:a:1") == ["aac"]  # pcm does not
    assert _after(cmd, "-b:a:1") == ["192k"]
    assert _after(cmd, "-c:s:0") == ["mov_text"]
    assert any("dropped subtitle stream 4 (hdmv_pgs_subtitle)" in n for n in notes)
    assert "+faststart" in cmd


def test_webm_reencodes_audio_to_opus_and_text_to_webvtt():
    cmd, _ = _command("out.webm", encoder="vp9")
    assert _after(cmd, "-c:a:0") == ["libopus"]
    assert _after(cmd, "-c:s:0") == ["webvtt"]
    assert _after(cmd, "-c:v") == ["libvpx-vp9"]


def test_trimmed_frames_cut_audio_and_drop_chapters():
    cmd, _ = _command("out.mkv", start_s=0.4, duration_s=0.8)
    second = cmd.index("in.mkv")
    assert cmd[second - 5 : second] == ["-ss", "0.400000", "-t", "0.800000", "-i"]
    assert _after(cmd, "-map_chapters") == ["-1"]


def test_video_only_source_has_one_input():
    chosen = encoders.encoder("ffv1")
    job = EncodeJob(
        source=Path("in.mkv"),
        target=Path("o.mkv"),
        container=encoders.container(Path("o.mkv"), chosen),
        encoder=chosen,
        quality=[],
        pix_fmt="yuv444p",
        colour=ColourTags(),
        streams=[Stream(0, "video", "h264")],
    )
    cmd, _ = build_command("ffmpeg", job)
    assert cmd.count("-i") == 1
    assert "-vf" not in cmd
    assert _after(cmd, "-level") == ["3"]


def test_parse_frames():
    assert parse_frames(None, 75) == (0, 75)
    assert parse_frames("10:20", 75) == (10, 20)
    assert parse_frames("50:", 75) == (50, 75)
    assert parse_frames(":5", 75) == (0, 5)
    for bad in ("10", "a:b", "1:2:3"):
        with pytest.raises(ConfigError, match="--frames takes START:END"):
            parse_frames(bad, 75)
    for bad in ("0:76", "20:10", "5:5", "-1:4", "75:"):
        with pytest.raises(ConfigError, match="out of range: the input has 75 frames"):
            parse_frames(bad, 75)


def test_time_span():
    assert time_span(0, 75, 75, Fraction(25)) == (0.0, None)
    assert time_span(10, 30, 75, Fraction(25)) == (0.4, 0.8)
    assert time_span(30, 75, 75, Fraction(25)) == (1.2, None)
    assert time_span(5, 10, 75, Fraction(0)) == (0.0, None)


def test_progress_text():
    assert format_progress(0, 75, 0.0) == "0/75 frames (0%)"
    assert format_progress(15, 75, 3.0) == "15/75 frames (20%), 5.00 fps, ETA 0:00:12"
    assert format_seconds(3725.2) == "1:02:06"


def test_progress_lines_when_not_a_terminal():
    out = io.StringIO()
    progress = Progress("x", stream=out, interval=3600)
    for done in range(11):
        progress.update(done, 10)
    progress.finish()
    lines = out.getvalue().splitlines()
    assert lines[0] == "x: 0/10 frames (0%)"  # the first call, then nothing until the end
    assert lines[-1].startswith("x: 10/10 frames (100%)")
    assert len(lines) == 2


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_rewrites_one_line_on_a_terminal():
    out = _Terminal()
    progress = Progress("x", stream=out, interval=0)
    for done in range(3):
        progress.update(done, 2)
    progress.finish()
    progress.finish()  # a second call (error path after success) adds nothing
    text = out.getvalue()
    assert text.count("\r") == 3
    assert text.rstrip("\n").split("\r")[-1].startswith("x: 2/2 frames (100%)")
    assert text.count("\n") == 1
