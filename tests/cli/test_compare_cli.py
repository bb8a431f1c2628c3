"""``paragon compare``: a real clip decoded by PyAV, real ONNX Runtime sessions, a real PNG."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vsparagon.tools.compare import busiest

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bigbuckbunny_320x180.mp4"


def paragon(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "vsparagon.cli.main", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def test_sheet_has_a_row_per_frame_and_a_column_per_method(plain_onnx, tiny_onnx, tmp_path):
    out = tmp_path / "cmp.png"
    proc = paragon(
        "compare", str(SAMPLE), str(out), "--model", f"plain={plain_onnx}", "--model", f"random={tiny_onnx}",
        "--frames", "3,40", "--crop", "40x24", "--at", "100,60", "--zoom", "1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"wrote {out}"
    sheet = np.asarray(Image.open(out).convert("RGB"))
    tw, th, gap = 80, 48, 4  # 40x24 source pixels at x2, zoom 1
    assert sheet.shape == (2 * th + gap, 4 * (tw + gap) - gap, 3)
    for row in range(2):
        top = row * (th + gap)
        tiles = [sheet[top : top + th, c * (tw + gap) : c * (tw + gap) + tw] for c in range(4)]
        below_label = slice(20, th)  # the labels cover the top rows
        # the plain model outputs exactly the nearest-neighbour enlargement: the same as the source column
        assert np.array_equal(tiles[0][below_label], tiles[2][below_label])
        assert not np.array_equal(tiles[1][below_label], tiles[0][below_label])  # bicubic differs
        assert not np.array_equal(tiles[3][below_label], tiles[0][below_label])


def test_the_default_crop_is_the_most_detailed_area():
    frame = np.full((60, 80, 3), 128, dtype=np.uint8)
    frame[32:48, 40:64] = np.random.default_rng(0).integers(0, 255, (16, 24, 3))
    y, x = busiest(frame, (16, 24))
    assert abs(y - 32) <= 8
    assert abs(x - 40) <= 8


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.mp4", "o.png", "--model", "a=M"], "missing.mp4: no such video file"),
        ([str(SAMPLE), "o.png", "--model", "M"], "--model takes LABEL=MODEL, got"),
        ([str(SAMPLE), "o.png", "--model", "a=M", "--frames", "1,x"], "--frames takes frame numbers"),
        ([str(SAMPLE), "o.png", "--model", "a=M", "--frames", "500"], "has no frame 500"),
        ([str(SAMPLE), "o.png", "--model", "a=M", "--crop", "4x4"], "--crop must be 8 to 1024"),
        ([str(SAMPLE), "o.png", "--model", "a=M", "--at", "300,170"], "leaves the 320x180 frame"),
        ([str(SAMPLE), "nodir/o.png", "--model", "a=M"], "output folder nodir does not exist"),
    ],
)
def test_bad_input_is_one_line(plain_onnx, tmp_path, args, message):
    proc = paragon("compare", *[a.replace("=M", f"={plain_onnx}") for a in args], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert message in proc.stderr
