"""Checkpoints round-trip, and every kind of bad file fails with a message naming it."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from helpers import randomize_
from safetensors.torch import load_file, save_file

from vsparagon import models
from vsparagon.catalogue.descriptor import METADATA_KEY
from vsparagon.errors import CheckpointError
from vsparagon.models.checkpoint import DIGEST_KEY, tensor_digest


def _same_output(a, b, atol=0.0):
    x = torch.rand(1, 3, 11, 9, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return (a.eval()(x) - b.eval()(x)).abs().max().item() <= atol


@pytest.mark.parametrize("scale", [1, 3])
def test_training_form_round_trip(tmp_path, scale):
    model = randomize_(models.create("tiny", scale=scale))
    path = tmp_path / "tiny.safetensors"
    descriptor = models.save(model, path)
    assert descriptor.fused is False
    assert descriptor.scale == scale
    assert descriptor.variant == "paragonsr_tiny"
    loaded = models.load(path)
    assert not models.is_fused(loaded)
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _same_output(model, loaded)


def test_fused_form_round_trip_and_metadata(tmp_path):
    fused = models.fuse(randomize_(models.create("xs", scale=4)))
    path = tmp_path / "xs_fused.safetensors"
    models.save(fused, path)
    descriptor = models.read_descriptor(path)
    assert descriptor.fused is True
    assert (descriptor.arch, descriptor.variant, descriptor.scale) == ("paragonsr", "paragonsr_xs", 4)
    assert descriptor.receptive_radius == fused.receptive_radius
    assert descriptor.config["dim"] == 48
    assert descriptor.format_version == 2
    loaded = models.load(path)
    assert models.is_fused(loaded)
    assert not loaded.training
    assert _same_output(fused, loaded)


def test_training_checkpoint_loads_fused_on_request(tmp_path):
    model = randomize_(models.create("tiny", scale=2))
    path = tmp_path / "train.safetensors"
    models.save(model, path)
    fused = models.load(path, fused=True)
    assert models.is_fused(fused)
    assert _same_output(model, fused, atol=1e-5)


def test_fused_checkpoint_cannot_be_unfused(tmp_path):
    path = tmp_path / "f.safetensors"
    models.save(models.fuse(models.create("tiny")), path)
    with pytest.raises(CheckpointError, match="cannot be turned back"):
        models.load(path, fused=False)


def test_a_file_alone_rebuilds_the_model_without_the_variant_table(tmp_path):
    from vsparagon.models import ParagonConfig, ParagonSR

    custom = ParagonSR(ParagonConfig(dim=12, num_groups=2, blocks_per_group=1, band_kernel=5, scale=3))
    path = tmp_path / "custom.safetensors"
    models.save(custom, path)
    loaded = models.load(path)
    assert loaded.cfg == custom.cfg
    assert loaded.variant == "custom"
    assert _same_output(custom, loaded)


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    models.save(models.create("tiny"), path)
    before = path.read_bytes()

    def broken_save_file(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("vsparagon.models.checkpoint.save_file", broken_save_file)
    with pytest.raises(OSError, match="No space left"):
        models.save(models.create("tiny", scale=4), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]  # no temp file left


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"nothere\.safetensors: no such checkpoint file"):
        models.load(tmp_path / "nothere.safetensors")


def test_a_folder_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="is not a file"):
        models.load(tmp_path)


def test_random_bytes(tmp_path):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(CheckpointError, match=r"garbage\.safetensors: not a readable safetensors checkpoint"):
        models.load(path)


def test_truncated_file(tmp_path):
    path = tmp_path / "cut.safetensors"
    models.save(models.create("tiny"), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.safetensors"):
        models.load(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.safetensors: not a readable"):
        models.load(path)


def test_pickle_checkpoint_is_foreign(tmp_path):
    path = tmp_path / "model.pth"
    torch.save(models.create("tiny").state_dict(), path)
    with pytest.raises(CheckpointError, match=r"model\.pth: not a vsparagon checkpoint; .* own architectures only"):
        models.load(path)


def test_safetensors_without_our_metadata_is_foreign(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"conv.weight": torch.zeros(4, 3, 3, 3)}, str(path))
    with pytest.raises(CheckpointError, match=r"foreign\.safetensors: not a vsparagon checkpoint"):
        models.load(path)


def _rewrite(path, tensors=None, metadata_edit=None):
    """Rewrite a checkpoint as a tool that edits it would, keeping the checksum valid."""
    tensors = load_file(str(path)) if tensors is None else tensors
    descriptor = json.loads(models.read_descriptor(path).to_json())
    if metadata_edit:
        metadata_edit(descriptor)
    metadata = {METADATA_KEY: json.dumps(descriptor), DIGEST_KEY: tensor_digest(tensors)}
    save_file(tensors, str(path), metadata=metadata)


def test_metadata_says_another_variant(tmp_path):
    path = tmp_path / "m.safetensors"
    models.save(models.create("tiny"), path)
    _rewrite(path, metadata_edit=lambda d: d["config"].update(dim=48))
    with pytest.raises(CheckpointError, match=r"m\.safetensors: tensor .* has shape .* the metadata implies"):
        models.load(path)


def test_metadata_says_fused_but_tensors_are_not(tmp_path):
    path = tmp_path / "m.safetensors"
    models.save(models.create("tiny"), path)
    _rewrite(path, metadata_edit=lambda d: d.update(fused=True))
    with pytest.raises(CheckpointError, match=r"tensors do not match the metadata \(\d+ missing.*unexpected"):
        models.load(path)


def test_a_tensor_was_removed(tmp_path):
    path = tmp_path / "m.safetensors"
    models.save(models.create("tiny"), path)
    tensors = load_file(str(path))
    del tensors["head.main.weight"]
    _rewrite(path, tensors=tensors)
    with pytest.raises(CheckpointError, match=r"1 missing: head\.main\.weight"):
        models.load(path)


def test_scale_disagreement_inside_metadata(tmp_path):
    path = tmp_path / "m.safetensors"
    models.save(models.create("tiny"), path)
    _rewrite(path, metadata_edit=lambda d: d.update(scale=4))
    with pytest.raises(CheckpointError, match="scale 4 vs config scale 2"):
        models.load(path)


def test_newer_format_version(tmp_path):
    path = tmp_path / "m.safetensors"
    models.save(models.create("tiny"), path)
    _rewrite(path, metadata_edit=lambda d: d.update(format_version=99))
    with pytest.raises(CheckpointError, match="format version 99 is not supported"):
        models.load(path)


def test_corrupt_metadata_json(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file({"x": torch.zeros(1)}, str(path), metadata={METADATA_KEY: "{not json"})
    with pytest.raises(CheckpointError, match="not valid JSON"):
        models.load(path)


def test_corrupted_header_length(tmp_path):
    path = tmp_path / "m.safetensors"
    models.save(models.create("tiny"), path)
    data = bytearray(path.read_bytes())
    data[:8] = struct.pack("<Q", 10**12)  # header length far beyond the file
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"m\.safetensors: not a readable safetensors"):
        models.load(path)


def test_flipped_bytes_in_the_weights_fail_the_checksum(tmp_path):
    path = tmp_path / "m.safetensors"
    models.save(models.create("tiny"), path)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # inside the last tensor's data; the header is untouched
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"m\.safetensors: the weights fail their checksum"):
        models.load(path)
