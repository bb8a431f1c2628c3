"""Typed exceptions raised by vsparagon.

Each message names the bad value, what is accepted and what to do, so that the
VapourSynth layer and the CLI can show it to the user unchanged.
"""

from __future__ import annotations


class ParagonError(Exception):
    """Base class of every error vsparagon raises on purpose."""


class ConfigError(ParagonError, ValueError):
    """A variant name, scale or other model setting is not accepted."""


class InputError(ParagonError, ValueError):
    """A tensor given to a model has the wrong rank, channels or dtype."""


class CheckpointError(ParagonError):
    """A checkpoint file is missing, unreadable, foreign or inconsistent."""


class ExportError(ParagonError):
    """An ONNX export failed or did not match the PyTorch model."""


class MissingDependencyError(ParagonError, ImportError):
    """An optional dependency (torch, onnx, ...) is needed but not installed."""
