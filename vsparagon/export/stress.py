"""Stress patterns: inputs in [0, 1] that ordinary footage contains and unbounded models blow up on.

A sane x2/x4 model keeps its output within about [-0.3, 1.4] on any of them; the bar the
tests and ``benchmarks/stress_table.py`` hold every model to is finite output with
``max |output| <= STRESS_BOUND``. Pure NumPy: the tests run the patterns through PyTorch and
through ONNX Runtime alike.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: Largest |output| a model may give on any stress pattern.
STRESS_BOUND = 2.0


def _gaussian(sigma: float) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    return lambda photo, rng: np.clip(0.5 + sigma * rng.standard_normal(photo.shape), 0, 1)


def _checkerboard(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    _, h, w = photo.shape
    board = (np.indices((h, w)).sum(axis=0) % 2).astype(np.float64)
    return np.broadcast_to(board, photo.shape)


#: name -> pattern(photo, rng): each ``(3, H, W)`` float in [0, 1], the size of ``photo``.
PATTERNS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "photo": lambda photo, rng: photo,
    "photo + grain 0.1": lambda photo, rng: np.clip(photo + 0.1 * rng.standard_normal(photo.shape), 0, 1),
    "binary noise": lambda photo, rng: (rng.random(photo.shape) < 0.5).astype(np.float64),
    "uniform noise": lambda photo, rng: rng.random(photo.shape),
    "gaussian 0.05": _gaussian(0.05),
    "gaussian 0.1": _gaussian(0.1),
    "gaussian 0.2": _gaussian(0.2),
    "gaussian 0.5": _gaussian(0.5),
    "1-px checkerboard": _checkerboard,
    "all 0": lambda photo, rng: np.zeros_like(photo),
    "all 1": lambda photo, rng: np.ones_like(photo),
}


def stress_inputs(photo: np.ndarray, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Every pattern at the size of ``photo`` (``(3, H, W)`` in [0, 1]), as float32 ``(1, 3, H, W)``."""
    out = {}
    for i, (name, make) in enumerate(PATTERNS.items()):
        rng = np.random.default_rng([seed, i])
        out[name] = np.ascontiguousarray(make(photo, rng), dtype=np.float32)[None]
    return out


def worst(output: np.ndarray) -> float:
    """Largest |value| of ``output``, ``inf`` if any value is not finite."""
    values = np.asarray(output, dtype=np.float64)
    return float(np.abs(values).max()) if np.isfinite(values).all() else float("inf")


__all__ = ["PATTERNS", "STRESS_BOUND", "stress_inputs", "worst"]
