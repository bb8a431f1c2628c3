"""``paragon upscale`` end to end: real processes, bestsource, ONNX Runtime and ffmpeg, on the sample clip."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import FFMPEG, PARAGON, ctrl_c_reaches_children, decoded_frames, duration, media_info, paragon

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "bigbuckbunny_320x180.mp4"
SAMPLE_FRAMES = 75  # 3 s at 25 fps


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """VSPARAGON_CACHE for these runs (bestsource indexes go there)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def whole_sample(tmp_path_factory, cache) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The README's main job: the whole sample clip, x2 with the shipped tiny model, into Matroska."""
    out = tmp_path_factory.mktemp("whole") / "out.mkv"
    result = paragon("upscale", SAMPLE, out, "--preset", "veryfast", cache=cache)
    return out, result


@pytest.mark.slow
def test_whole_sample_clip(whole_sample):
    out, result = whole_sample
    assert result.returncode == 0, result.stderr
    info = media_info(out)
    assert re.search(r"Video: h264 .*640x360", info), info
    assert re.search(r"Audio: aac .*48000 Hz, stereo", info), info
    assert decoded_frames(out) == SAMPLE_FRAMES
    assert duration(info) == pytest.approx(3.0, abs=0.05)
    assert not out.with_name("out.partial.mkv").exists()


@pytest.mark.slow
def test_progress_goes_to_stderr_and_a_summary_to_stdout(whole_sample):
    _, result = whole_sample
    assert result.stdout.startswith("wrote ")
    assert "75 frames, 640x360" in result.stdout
    assert len(result.stdout.splitlines()) == 1
    assert re.search(r"paragon upscale: 75/75 frames \(100%\), [\d.]+ fps, ETA 0:00:00", result.stderr)
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_colour_metadata_of_the_sample_survives(whole_sample):
    out, _ = whole_sample
    assert "yuv420p(tv, bt709, progressive)" in media_info(out)


@pytest.fixture(scope="module")
def tagged_source(tmp_path_factory) -> Path:
    """8 frames at 64x48, full range BT.601 (470bg/smpte170m), with an AAC track and an SRT subtitle."""
    folder = tmp_path_factory.mktemp("tagged")
    srt = folder / "subs.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,300\nhello\n")
    path = folder / "tagged.mkv"
    subprocess.run(
        [FFMPEG, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=25:duration=0.32",
         "-f", "lavfi", "-i", "sine=frequency=440:duration=0.32", "-i", str(srt),
         "-map", "0", "-map", "1", "-map", "2",
         "-vf", "setparams=colorspace=bt470bg:color_primaries=bt470bg:color_trc=smpte170m:range=pc",
         "-c:v", "libx264", "-pix_fmt", "yuvj420p", "-c:a", "aac", "-c:s", "srt", str(path)],
        check=True,
    )  # fmt: skip
    info = media_info(path)
    assert "pc, bt470bg/bt470bg/smpte170m" in info, info
    return path


@pytest.mark.parametrize(("name", "subtitle"), [("out.mkv", "subrip"), ("out.mp4", "mov_text")])
def test_colour_tags_round_trip_and_subtitles_follow_the_container(
    tagged_source, tiny_onnx, cache, tmp_path, name, subtitle
):
    out = tmp_path / name
    result = paragon("upscale", tagged_source, out, "--model", tiny_onnx, cache=cache)
    assert result.returncode == 0, result.stderr
    info = media_info(out)
    assert re.search(r"Video: h264 .*\(pc, bt470bg/bt470bg/smpte170m.*128x96", info), info
    assert "Audio: aac" in info
    assert f"Subtitle: {subtitle}" in info
    assert decoded_frames(out) == 8


def test_frames_range_trims_video_and_audio(tiny_onnx, cache, tmp_path):
    out = tmp_path / "cut.mp4"
    result = paragon(
        "upscale", SAMPLE, out, "--model", tiny_onnx, "--frames", "10:20", "--encoder", "x265", cache=cache
    )
    assert result.returncode == 0, result.stderr
    info = media_info(out)
    assert re.search(r"Video: hevc .*640x360", info), info
    assert "Audio: aac" in info
    assert decoded_frames(out) == 10
    assert duration(info) == pytest.approx(0.4, abs=0.05)  # copied audio is cut at packet boundaries


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_a_killed_run_leaves_no_output(tiny_onnx, cache, tmp_path, sig):
    out = tmp_path / "out.mkv"
    out.write_bytes(b"an older file")
    partial = tmp_path / "out.partial.mkv"
    with ctrl_c_reaches_children():
        proc = subprocess.Popen(
            [str(PARAGON), "upscale", str(SAMPLE), str(out), "--model", tiny_onnx],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "VSPARAGON_CACHE": str(cache)},
        )
    deadline = time.monotonic() + 120
    while not partial.exists() and proc.poll() is None:  # ffmpeg opens it before the first frame
        assert time.monotonic() < deadline, "ffmpeg never started writing"
        time.sleep(0.05)
    time.sleep(1.0)  # a few frames into the 75
    assert proc.poll() is None, "finished before it could be killed"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert out.read_bytes() == b"an older file"  # the old file is untouched, no half-written one replaced it
    if sig in (signal.SIGINT, signal.SIGTERM):
        assert proc.returncode == 130
        assert not partial.exists()
        assert stderr.strip().splitlines()[-1] == "paragon upscale: interrupted"
        assert "Traceback" not in stderr
    else:
        assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.mkv", "out.mkv"], "input 'missing.mkv' does not exist"),
        (["garbage.mkv", "out.mkv"], "input 'garbage.mkv' is not a readable media file (ffmpeg: "),
        ([str(SAMPLE), "nodir/out.mkv"], "output folder 'nodir' does not exist"),
        ([str(SAMPLE), "garbage.mkv/out.mkv"], "output folder 'garbage.mkv' does not exist"),
        ([str(SAMPLE), "out.mkv", "--encoder", "h266"], "unknown encoder 'h266'; choose one of: x264, x265, av1"),
        ([str(SAMPLE), "out.mp4", "--encoder", "ffv1"], "--encoder ffv1 cannot go in a .mp4 file"),
        ([str(SAMPLE), "out.mkv", "--frames", "70:80"], "--frames 70:80 is out of range: the input has 75 frames"),
        ([str(SAMPLE), "out.mkv", "--frames", "ten"], "--frames takes START:END"),
        ([str(SAMPLE), "out.mkv", "--crf", "99"], "--crf for x264 must be 0 to 51, got 99"),
        ([str(SAMPLE), "out.mkv", "--variant", "xl"], "no trained model ships for variant 'xl' at scale 2"),
        ([str(SAMPLE), "out.mkv", "--model", "absent.onnx"], "model file 'absent.onnx' does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, cache, args, message):
    (tmp_path / "garbage.mkv").write_bytes(b"\x00not a video" * 100)
    result = paragon("upscale", *args, cwd=tmp_path, cache=cache)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("paragon upscale: error: ")
    assert message in lines[0]
    assert result.stdout == ""
    assert not (tmp_path / "out.mkv").exists()
    assert not list(tmp_path.glob("*.partial.*"))


def test_a_failing_frame_is_one_line_and_leaves_no_output(tagged_source, fixed_size_onnx, cache, tmp_path):
    """The model accepts only 16x16 input: the filter is created, then frame 0 fails inside the pipe."""
    out = tmp_path / "out.mkv"
    result = paragon("upscale", tagged_source, out, "--model", fixed_size_onnx, "--backend", "ort-cpu", cache=cache)
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("paragon upscale: error: a frame failed: paragon.Upscale: frame 0: inference failed")
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert not list(tmp_path.glob("*.partial.*"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to any folder")
def test_an_unwritable_output_folder(cache, tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    result = paragon("upscale", SAMPLE, folder / "out.mkv", cache=cache)
    assert result.returncode == 2
    assert result.stderr.strip() == f"paragon upscale: error: output folder {str(folder)!r} is not writable"


def test_an_rgb_source_is_encoded_as_bt709_yuv(tiny_onnx, cache, tmp_path):
    """y4m carries no RGB: an RGB source (lossless gbrp FFV1) leaves as 4:4:4 YUV tagged BT.709."""
    source = tmp_path / "rgb.mkv"
    subprocess.run(
        [FFMPEG, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=25:duration=0.16",
         "-c:v", "ffv1", "-pix_fmt", "gbrp", str(source)],
        check=True,
    )  # fmt: skip
    out = tmp_path / "out.mkv"
    result = paragon("upscale", source, out, "--model", tiny_onnx, cache=cache)
    assert result.returncode == 0, result.stderr
    info = media_info(out)
    assert re.search(r"Video: h264 .*yuv444p\(tv, bt709.*128x96", info), info
    assert decoded_frames(out) == 4


@pytest.mark.parametrize(
    ("name", "encoder", "video", "audio"),
    [
        ("out.webm", "av1", "Video: av1", "Audio: opus"),
        ("out.webm", "vp9", "Video: vp9", "Audio: opus"),
        ("out.mkv", "ffv1", "Video: ffv1", "Audio: aac"),
    ],
)
def test_every_encoder_writes_a_playable_file(tiny_onnx, cache, tmp_path, name, encoder, video, audio):
    out = tmp_path / name
    result = paragon("upscale", SAMPLE, out, "--model", tiny_onnx, "--encoder", encoder, "--frames", "0:3", cache=cache)
    assert result.returncode == 0, result.stderr
    info = media_info(out)
    assert video in info, info
    assert audio in info, info
    assert decoded_frames(out) == 3
