"""What the registry knows of one architecture (each architecture package exports one)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from vsparagon.catalogue.descriptor import UNKNOWN_RADIUS, ModelDescriptor
from vsparagon.models.fusion import is_fused


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


def describe_global(arch: str, *, fp16_safe: bool) -> Callable[[Any], ModelDescriptor]:
    """The ``describe`` of an architecture that sees the whole picture (EHR-SR, HERMES).

    Its descriptor says the receptive field is global, so the plugin runs it whole-frame or
    joins tiles by blending (approximate); no size constraint, since the model pads inside.
    """

    def describe(model: Any) -> ModelDescriptor:
        cfg = model.cfg
        return ModelDescriptor(
            arch=arch,
            variant=model.variant,
            scale=cfg.scale,
            in_channels=cfg.in_channels,
            out_channels=cfg.out_channels,
            multiple_of=1,
            receptive_radius=UNKNOWN_RADIUS,
            global_context=True,
            fp16_safe=fp16_safe,
            fused=is_fused(model),
            config=asdict(cfg),
        )

    describe.__doc__ = f"The descriptor of a {arch} model: its receptive field is global."
    return describe
