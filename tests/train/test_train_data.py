"""Training data: folders, EXIF, videos, pairs, bad files, and index-determined samples."""

from __future__ import annotations

import logging

import av
import numpy as np
import pytest
import torch
from PIL import Image

from vsparagon.train.config import DataSection, DegradationSection, Source
from vsparagon.train.data import (
    DataError,
    PictureCache,
    StepBatches,
    TrainSamples,
    load_picture,
    scan,
    synthetic_picture,
    validation_set,
)
from vsparagon.train.degrade import Pipeline, from_uint8, resize


def write_pictures(folder, count=3, size=(80, 60)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(synthetic_picture(i, max(size))[: size[1], : size[0]]).save(folder / f"p{i}.png")
    return folder


def samples(folder, **data):
    section = DataSection(train=[Source(kind="images", path=str(folder))], crop=16, **data)
    return TrainSamples(section, Pipeline(DegradationSection()), scale=2, seed=0)


def test_exif_orientation_is_applied(tmp_path):
    pic = synthetic_picture(1, 64)[:40, :64]  # 64 wide, 40 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(pic).save(tmp_path / "rot.jpg", exif=exif, quality=100)
    (item,) = scan(Source(kind="images", path=str(tmp_path)), min_side=8, scale=2, seed=0)
    assert (item.width, item.height) == (40, 64)
    loaded = load_picture(item)
    assert loaded.shape == (64, 40, 3)
    right = np.abs(loaded.astype(int) - np.rot90(pic, k=-1).astype(int)).mean()
    wrong = np.abs(loaded.astype(int) - np.rot90(pic, k=1).astype(int)).mean()
    assert right < 8
    assert wrong > 4 * right


def test_unreadable_files_are_skipped_with_a_count(tmp_path, caplog):
    folder = write_pictures(tmp_path / "hr")
    (folder / "broken.png").write_bytes(b"not a png at all")
    (folder / "empty.jpg").write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="vsparagon.train"):
        ds = samples(folder)
    assert "skipped 2 unreadable file(s)" in caplog.text
    assert len(ds.sources[0]) == 3
    # a file that breaks after the scan is skipped while training, and counted
    (folder / "p0.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    skipped = sum(ds[i][2] for i in range(40))
    assert skipped == 1
    lr, hr, _ = ds[41]
    assert lr.shape == (3, 16, 16)
    assert hr.shape == (3, 32, 32)


def test_empty_and_too_small_data_fail_before_training(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        samples(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        samples(tmp_path / "nowhere")
    small = write_pictures(tmp_path / "small", size=(24, 20))
    with pytest.raises(
        DataError, match=r"smaller than the 32x32 HR crop \(largest short side: 20\); lower data.crop to at most 10"
    ):
        samples(small)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_bytes(b"junk")
    with pytest.raises(DataError, match="no readable images found"):
        samples(tmp_path / "junk")


def test_samples_are_a_function_of_seed_and_index(tmp_path):
    folder = write_pictures(tmp_path / "hr")
    a, b = samples(folder), samples(folder)
    for i in (0, 5, 123456):
        assert torch.equal(a[i][0], b[i][0])
        assert torch.equal(a[i][1], b[i][1])
    assert not torch.equal(a[0][1], a[1][1])
    lr, hr, _ = a[7]
    assert torch.allclose(lr, resize(hr, (16, 16), "bicubic"))  # bicubic preset
    # each file is decoded once per process, then served from the cache
    assert len(a.cache.entries) <= 3


def test_picture_cache_evicts_least_recent(tmp_path):
    folder = write_pictures(tmp_path / "hr", count=3, size=(512, 512))
    items = scan(Source(kind="images", path=str(folder)), min_side=8, scale=2, seed=0)
    cache = PictureCache(limit_mb=1)  # one 512x512 RGB picture is 0.75 MiB
    first = cache.get(items[0])
    assert cache.get(items[0]) is first
    cache.get(items[1])
    assert len(cache.entries) == 1
    assert cache.used <= 2**20


def test_video_frames_are_sampled(tmp_path):
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(30):
            frame = np.full((64, 96, 3), i * 8, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    (tmp_path / "bad.mkv").write_bytes(b"nope")
    items = scan(Source(kind="video", path=str(tmp_path), frames=4), min_side=32, scale=2, seed=0)
    assert len(items) == 4
    assert {it.width for it in items} == {96}
    levels = [int(np.median(load_picture(it))) for it in items]
    assert levels == sorted(levels)
    assert levels[0] < levels[-1]
    assert abs(levels[0] - 0.125 * 30 * 8) < 20  # first sample near 1/8 of the way


def test_paired_folders_stay_aligned(tmp_path):
    hr_dir, lr_dir = tmp_path / "hr", tmp_path / "lr"
    write_pictures(hr_dir, count=2, size=(64, 64))
    lr_dir.mkdir()
    for p in hr_dir.iterdir():
        hr = from_uint8(np.asarray(Image.open(p)))
        lr = (resize(hr, (32, 32), "area") * 255).round().byte().permute(1, 2, 0).numpy()
        Image.fromarray(lr).save(lr_dir / p.name)
    Image.fromarray(synthetic_picture(9, 64)[:30, :30]).save(lr_dir / "p9.png")  # no HR: ignored
    section = DataSection(train=[Source(kind="paired", path=str(hr_dir), lr_path=str(lr_dir))], crop=12)
    ds = TrainSamples(section, Pipeline(DegradationSection()), scale=2, seed=0)
    for i in range(6):
        lr, hr, _ = ds[i]
        assert lr.shape == (3, 12, 12)
        assert hr.shape == (3, 24, 24)
        assert (resize(hr, (12, 12), "area") - lr).abs().max() < 2.5 / 255  # same place, same flips


def test_step_batches_split_the_global_batch():
    one = list(StepBatches(start=0, iters=3, batch=8, accumulate=2, rank=0, world=1))
    ranks = [list(StepBatches(start=0, iters=3, batch=8, accumulate=2, rank=r, world=2)) for r in range(2)]
    assert one[0] == [0, 1, 2, 3]
    assert one[1] == [4, 5, 6, 7]
    assert len(one) == 6
    for m in range(6):
        assert sorted(ranks[0][m] + ranks[1][m]) == one[m]
    resumed = list(StepBatches(start=2, iters=3, batch=8, accumulate=2, rank=0, world=1))
    assert resumed == one[4:]
    with pytest.raises(Exception, match="multiple of 4"):
        StepBatches(start=0, iters=3, batch=6, accumulate=2, rank=0, world=2)


def test_validation_set_uses_bicubic_lr_and_caps_size(tmp_path):
    folder = write_pictures(tmp_path / "val", count=2, size=(75, 51))
    section = DataSection(
        train=[Source(kind="synthetic")], val=[Source(kind="images", path=str(folder))], val_max_side=40
    )
    (a, _b) = validation_set(section, scale=2, seed=0)
    assert a.hr.shape == (3, 40, 40)
    assert a.lr.shape == (3, 20, 20)
    assert torch.allclose(a.lr, resize(a.hr, (20, 20), "bicubic"))
