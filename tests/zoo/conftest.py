"""The zoo: small checkpoints of other projects' architectures, built once per test session."""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("spandrel") is None:  # the zoo extra is part of dev; without it, nothing here runs
    collect_ignore_glob = ["test_zoo_*.py"]


@pytest.fixture(scope="session")
def zoo(tmp_path_factory):
    from zoo_models import build_zoo

    return build_zoo(tmp_path_factory.mktemp("zoo"))
