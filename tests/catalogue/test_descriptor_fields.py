"""Descriptor fields added within format 2 (size requirements, global context) are written only when used."""

from __future__ import annotations

import json

from vsparagon.catalogue import ModelDescriptor
from vsparagon.catalogue.descriptor import LATER_FIELDS


def test_a_model_that_does_not_use_them_is_written_as_before():
    plain = ModelDescriptor(arch="paragonsr", variant="paragonsr_tiny", scale=2, receptive_radius=60)
    written = json.loads(plain.to_json())
    assert not set(LATER_FIELDS) & set(written)
    assert ModelDescriptor.from_json(plain.to_json()) == plain


def test_a_foreign_model_round_trips_them():
    foreign = ModelDescriptor(arch="DAT", variant="custom", scale=4, min_size=16, square=True, global_context=True)
    written = json.loads(foreign.to_json())
    assert (written["min_size"], written["square"], written["global_context"]) == (16, True, True)
    assert ModelDescriptor.from_json(foreign.to_json()) == foreign
