"""What the registry knows of one architecture (each architecture package exports one)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from vsparagon.catalogue.descriptor import ModelDescriptor


def _no_check(cfg: Any) -> None:
    """A config whose types are its only rules."""


@dataclass(frozen=True, kw_only=True)
class ArchEntry:
    """How to build, rebuild and describe one architecture's models."""

    name: str
    """The catalogue's architecture name (``paragonsr``, ``ehrsr``, ``hermes``)."""
    module: type[nn.Module]
    """The model class: ``module(config, variant=...)``; instances keep ``.cfg`` and ``.variant``."""
    config: type[Any]
    """The hyperparameter dataclass (fields ``scale``, ``in_channels`` and ``out_channels`` among them)."""
    describe: Callable[[Any], ModelDescriptor]
    """The descriptor of a model of this architecture."""
    validate: Callable[[Any], None] = _no_check
    """Checks a config beyond its types; raises ConfigError naming the bad value."""
