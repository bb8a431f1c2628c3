"""The registry: one entry per catalogue architecture; create, describe, save and load dispatch on it."""

from __future__ import annotations

import pytest

from vsparagon import models
from vsparagon.catalogue import ARCHITECTURES
from vsparagon.errors import CheckpointError, ConfigError
from vsparagon.models.registry import ENTRIES, create, describe


def test_every_catalogue_architecture_has_an_entry():
    assert set(ENTRIES) == set(ARCHITECTURES)


@pytest.mark.parametrize("name", ["tiny", "ehrsr_tiny", "hermes_tiny"])
def test_create_builds_the_architecture_the_name_says(name):
    model = create(name, scale=2)
    assert describe(model).arch == ARCHITECTURES[describe(model).arch].name
    assert describe(model).variant == models.canonical_variant(name)


def test_unknown_options_and_misplaced_gate_are_refused():
    with pytest.raises(ConfigError, match=r"unknown paragonsr config fields \['nonsense'\]"):
        create("tiny", nonsense=1)
    with pytest.raises(ConfigError, match="gate='sigmoid' is a ParagonSR option"):
        create("ehrsr_tiny", gate="sigmoid")
    with pytest.raises(ConfigError, match="supported scales: 2, 4"):
        create("hermes_tiny", scale=3)


def test_a_checkpoint_of_one_architecture_loaded_as_another_is_refused(tmp_path):
    path = tmp_path / "e.safetensors"
    models.save(create("ehrsr_tiny", scale=2), path)
    assert models.read_descriptor(path).arch == "ehrsr"
    assert type(models.load(path)).__name__ == type(create("ehrsr_tiny")).__name__
    with pytest.raises(CheckpointError, match=r"holds a ehrsr model \(ehrsr_tiny\), not a paragonsr one"):
        models.load(path, arch="paragonsr")
