"""``paragon eval``: real ONNX Runtime sessions on real pictures, scores checked independently."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from vsparagon.tools.evaluate import evaluate
from vsparagon.train.data import synthetic_picture
from vsparagon.train.degrade import from_uint8, resize
from vsparagon.train.metrics import psnr_y


@pytest.fixture
def hr_folder(tmp_path):
    folder = tmp_path / "hr"
    folder.mkdir()
    Image.fromarray(synthetic_picture(1, 96)[:90, :95]).save(folder / "a.png")  # odd sizes: cropped to x2
    Image.fromarray(synthetic_picture(2, 64)).save(folder / "b.png")
    (folder / "notes.txt").write_text("not a picture")
    return folder


def paragon(*args):
    return subprocess.run(
        [sys.executable, "-m", "vsparagon.cli.main", *args], capture_output=True, text=True, timeout=300
    )


def test_scores_match_an_independent_computation(plain_onnx, hr_folder):
    # plain_onnx outputs exactly the nearest-neighbour enlargement of its input
    results = evaluate(plain_onnx, hr_folder, scale=2, backend="ort-cpu")
    assert [r.name for r in results] == ["a.png", "b.png"]
    assert results[0].size == (94, 90)
    hr = from_uint8(synthetic_picture(1, 96)[:90, :94])
    lr = (resize(hr, (45, 47), "bicubic") * 255).round() / 255
    nearest = lr.repeat_interleave(2, 1).repeat_interleave(2, 2)
    assert abs(results[0].scores["model"][0] - psnr_y(nearest, hr, border=2)) < 1e-6
    for r in results:  # nearest loses to both classic resizers on these pictures
        assert r.scores["model"][0] < r.scores["bicubic"][0]
        assert r.scores["model"][0] < r.scores["lanczos"][0]
        assert 0 < r.scores["model"][1] < 1


def test_cli_table_and_json(plain_onnx, hr_folder):
    proc = paragon("eval", plain_onnx, str(hr_folder))
    assert proc.returncode == 0, proc.stderr
    assert "mean (2 pictures)" in proc.stdout
    assert "model - bicubic:" in proc.stdout
    as_json = paragon("eval", plain_onnx, str(hr_folder), "--json")
    rows = json.loads(as_json.stdout)
    assert [r["picture"] for r in rows] == ["a.png", "b.png"]
    assert set(rows[0]) >= {"model", "bicubic", "lanczos"}


def test_lr_codec_compresses_the_input_deterministically(plain_onnx, hr_folder):
    clean = evaluate(plain_onnx, hr_folder, scale=2, backend="ort-cpu")
    coded = evaluate(plain_onnx, hr_folder, scale=2, backend="ort-cpu", lr_codec=("h264", 40))
    again = evaluate(plain_onnx, hr_folder, scale=2, backend="ort-cpu", lr_codec=("h264", 40))
    for c, k, a in zip(clean, coded, again, strict=True):
        # H.264 at CRF 40 loses detail: every method scores lower than on the clean LR
        assert all(k.scores[m][0] < c.scores[m][0] - 0.3 for m in ("model", "bicubic", "lanczos"))
        assert k.scores == a.scores


def test_large_pictures_are_tiled_exactly(tiny_onnx, tmp_path, monkeypatch):
    from vsparagon.tools import evaluate as ev

    folder = tmp_path / "big"
    folder.mkdir()
    Image.fromarray(np.tile(synthetic_picture(3, 160), (2, 2, 1))).save(folder / "big.png")  # 320x320
    whole = ev.evaluate(tiny_onnx, folder, scale=2, backend="ort-cpu")[0].scores["model"]
    # a budget that fits only small tiles forces tiling of the same picture
    tiled = ev.evaluate(tiny_onnx, folder, scale=2, backend="ort-cpu", budget_bytes=64 << 20)[0].scores["model"]
    assert abs(whole[0] - tiled[0]) < 1e-3


def test_a_foreign_onnx_scores_a_2000x1500_picture(tmp_path):
    # A graph without our metadata (radius unknown): the tiling policy's default overlap, on a
    # picture too large for the whole-frame budget, must work (it used to raise in plan_tiles).
    from onnx import TensorProto, helper, save

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])
    graph = helper.make_graph([helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest")], "g", [x], [y])
    graph.initializer.append(scales)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(tmp_path / "foreign.onnx"))
    folder = tmp_path / "big"
    folder.mkdir()
    Image.fromarray(np.tile(synthetic_picture(5, 250), (6, 8, 1))).save(folder / "big.png")  # 2000x1500
    (score,) = evaluate(str(tmp_path / "foreign.onnx"), folder, scale=2, backend="ort-cpu")
    assert score.size == (2000, 1500)
    hr = from_uint8(np.tile(synthetic_picture(5, 250), (6, 8, 1)))
    lr = (resize(hr, (750, 1000), "bicubic") * 255).round() / 255
    nearest = lr.repeat_interleave(2, 1).repeat_interleave(2, 2)
    assert abs(score.scores["model"][0] - psnr_y(nearest, hr, border=2)) < 1e-6  # tiles joined exactly


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["MODEL", "nowhere"], "not a folder of HR pictures"),
        (["MODEL", "EMPTY"], "no pictures found"),
        (["missing.onnx", "HR"], "missing.onnx"),
        (["huge", "HR"], "unknown variant 'huge'"),
        (["MODEL", "SMALL"], "too small to evaluate"),
        (["MODEL", "HR", "--lr-codec", "mp3:9"], "--lr-codec takes h264:CRF or hevc:CRF with CRF 0-51, got 'mp3:9'"),
        (["MODEL", "HR", "--lr-codec", "h264:99"], "--lr-codec takes h264:CRF"),
    ],
)
def test_bad_input_is_one_line(plain_onnx, hr_folder, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "small").mkdir()
    Image.fromarray(synthetic_picture(4, 16)[:12, :12]).save(tmp_path / "small" / "s.png")
    names = {
        "MODEL": plain_onnx,
        "EMPTY": str(tmp_path / "empty"),
        "HR": str(hr_folder),
        "SMALL": str(tmp_path / "small"),
    }
    proc = paragon("eval", *[names.get(a, a) for a in args])
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert message in proc.stderr
    assert torch  # imported for the independent computation above
