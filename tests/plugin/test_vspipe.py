"""The real pipeline: bestsource -> core.paragon.Upscale under vspipe -> ffmpeg."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import pytest

ROOT = Path(__file__).resolve().parents[2]
VSPIPE = Path(sys.executable).with_name("vspipe")
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
SCRIPT = ROOT / "examples" / "upscale.vpy"


@pytest.fixture(scope="module")
def small_video(tmp_path_factory) -> Path:
    """A real H.264 file: 64x48, 6 frames."""
    path = tmp_path_factory.mktemp("video") / "input.mkv"
    subprocess.run(
        [FFMPEG, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=24:duration=0.25",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


def _vspipe(*args: str, **kwargs) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(VSPIPE), *args], capture_output=True, timeout=300, **kwargs)


def test_vspipe_into_ffmpeg(small_video, tiny_onnx, tmp_path):
    out = tmp_path / "output.mkv"
    vspipe = subprocess.Popen(
        [str(VSPIPE), "-c", "y4m", "-a", f"src={small_video}", "-a", f"model={tiny_onnx}", str(SCRIPT), "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    ffmpeg = subprocess.run(
        [FFMPEG, "-v", "error", "-i", "-", "-c:v", "libx264", "-crf", "18", str(out)],
        stdin=vspipe.stdout,
        capture_output=True,
        timeout=300,
    )
    assert vspipe.stdout is not None
    vspipe.stdout.close()
    assert vspipe.wait(timeout=300) == 0, vspipe.stderr.read().decode() if vspipe.stderr else ""
    assert ffmpeg.returncode == 0, ffmpeg.stderr.decode()
    # read the result back: size and frame count (imageio-ffmpeg ships no ffprobe)
    info = subprocess.run([FFMPEG, "-i", str(out), "-f", "null", "-"], capture_output=True, text=True, timeout=120)
    assert re.search(r"Video: h264.*, 128x96", info.stderr), info.stderr
    frames = re.findall(r"frame=\s*(\d+)", info.stderr)
    assert frames, info.stderr
    assert int(frames[-1]) == 6, info.stderr


def test_nothing_but_video_on_stdout(small_video, tiny_onnx, tmp_path):
    """The y4m stream is byte-exact: header, then per frame 'FRAME\\n' and the planes."""
    result = _vspipe("-c", "y4m", "-a", f"src={small_video}", "-a", f"model={tiny_onnx}", str(SCRIPT), "-")
    assert result.returncode == 0, result.stderr.decode()
    data = result.stdout
    header, _, rest = data.partition(b"\n")
    assert header.startswith(b"YUV4MPEG2 ")
    assert b" W128 H96 " in header
    assert b" C420" in header
    frame_bytes = 128 * 96 * 3 // 2  # 4:2:0, 8 bit
    assert len(rest) == 6 * (len(b"FRAME\n") + frame_bytes)
    assert rest.count(b"FRAME\n") >= 6


def test_a_bad_parameter_fails_the_script_cleanly(small_video, tiny_onnx):
    result = _vspipe(
        "-c", "y4m", "-a", f"src={small_video}", "-a", f"model={tiny_onnx}", "-a", "backend=warp-drive",
        str(SCRIPT), "-",
    )  # fmt: skip
    assert result.returncode != 0
    assert result.stdout == b""
    assert b"paragon.Upscale: unknown backend 'warp-drive'" in result.stderr
