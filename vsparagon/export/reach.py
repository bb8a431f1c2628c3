"""How far a model's output pixel sees: the receptive radius, measured once on small inputs.

Our own models know their radius from their configuration. A foreign model does not, so it is
measured: one input pixel is changed and the output pixels that change mark its footprint (an
impulse probe, forward passes only, so it also works for modules that change tensors in place).
A footprint that stays inside the probe gives the radius; it is then checked directly: a window
cut at an odd offset must reproduce the whole picture's output wherever it has ``radius`` pixels
of context, which is what ``join="crop"`` relies on. A footprint that reaches every edge of the
largest probe, or a window that does not reproduce the picture, means global context (attention
over the picture, global pooling, a reach too long to measure, or output that depends on where
the picture is cut): such models tile with blending.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from vsparagon.catalogue.descriptor import UNKNOWN_RADIUS
from vsparagon.export.onnx import picture_like

#: Probe sides tried in turn (input pixels), each rounded up to the model's size multiple and minimum.
PROBE_SIDES = (48, 96, 192)
#: Parameters x probe pixels above which a larger probe is not run (about 3e11 multiply-adds: seconds on 2 cores).
PROBE_BUDGET = 1.5e11
#: An output change below this fraction of the largest change is rounding, not reach.
FOOTPRINT_THRESHOLD = 1e-6
#: Largest |window - whole| (relative to the output's magnitude) for a measured radius to count as exact.
EXACT_TOLERANCE = 1e-5
#: Bumped when the probe changes, so that cached measurements are made again.
PROBE_VERSION = 1

Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Reach:
    """What the probe found."""

    radius: int
    """Receptive radius in input pixels; :data:`UNKNOWN_RADIUS` with ``global_context``."""
    global_context: bool
    """No overlap makes tiles exact."""
    note: str
    """How it was found, in words (``paragon info`` and the plugin's message show it)."""


def probe_reach(
    forward: Forward, *, channels: int, scale: int, multiple_of: int = 1, min_size: int = 0, parameters: int = 0
) -> Reach:
    """Measure the receptive radius of ``forward`` (``(1, C, n, n) -> (1, C', n*s, n*s)``) on the CPU in float32.

    Args:
        forward: the model, unclamped (a clamp hides changes in saturated pixels).
        channels: input planes.
        scale: upscaling factor.
        multiple_of, min_size: the model's size requirements (probe sides respect them).
        parameters: parameter count, to keep larger probes of big models within :data:`PROBE_BUDGET`.
    """
    sides = sorted({_side(n, multiple_of, min_size) for n in PROBE_SIDES})
    side = sides[0]
    with torch.no_grad():
        for index, side in enumerate(sides):
            if index > 0 and parameters * side * side > PROBE_BUDGET:
                break
            radius = _footprint(forward, channels=channels, side=side, scale=scale)
            if radius < side // 2 - 1:  # the footprint stayed inside: a bounded reach
                exact = _window_matches(
                    forward, channels=channels, scale=scale, radius=radius, multiple_of=multiple_of, min_size=min_size
                )
                if exact:
                    return Reach(radius, False, f"measured: an impulse reaches {radius} px; tiles checked exact")
                return Reach(
                    UNKNOWN_RADIUS,
                    True,
                    f"an impulse reaches {radius} px, but a window cut elsewhere does not reproduce the picture "
                    "(windowed attention, pixel-unshuffle or picture statistics)",
                )
    return Reach(
        UNKNOWN_RADIUS,
        True,
        f"an impulse reaches every edge of a {side}x{side} probe (attention or pooling over the picture, "
        "or a very deep network)",
    )


def _side(n: int, multiple_of: int, min_size: int) -> int:
    n = max(n, min_size)
    return -(-n // multiple_of) * multiple_of


def _footprint(forward: Forward, *, channels: int, side: int, scale: int) -> int:
    """Chebyshev distance (input pixels) from a changed centre pixel to the farthest output pixel that changes."""
    generator = torch.Generator().manual_seed(7)
    x = _picture(channels, side, side, generator)
    centre = side // 2
    bumped = x.clone()
    pixel = bumped[:, :, centre, centre]
    bumped[:, :, centre, centre] = torch.where(pixel < 0.5, 1.0, 0.0)  # a change of at least 0.5
    change = (forward(bumped) - forward(x)).abs().amax(dim=(0, 1))  # (side*s, side*s)
    peak = float(change.max())
    if peak == 0.0:
        return 0
    rows, cols = torch.nonzero(change > FOOTPRINT_THRESHOLD * peak, as_tuple=True)
    return int(max((rows // scale - centre).abs().max(), (cols // scale - centre).abs().max()))


def _window_matches(
    forward: Forward, *, channels: int, scale: int, radius: int, multiple_of: int, min_size: int
) -> bool:
    """Whether a window at an odd offset reproduces the whole picture where it has ``radius`` px of context.

    Window and picture are square and meet the model's size requirements, like every probe.
    """
    length = _side(2 * radius + 8, multiple_of, min_size)
    offset = 3
    side = _side(length + 2 * offset + 5, multiple_of, min_size)
    x = _picture(channels, side, side, torch.Generator().manual_seed(11))
    whole = forward(x)
    part = forward(x[:, :, offset : offset + length, offset : offset + length].contiguous())
    lo, hi = radius * scale, (length - radius) * scale
    expected = whole[:, :, offset * scale + lo : offset * scale + hi, offset * scale + lo : offset * scale + hi]
    got = part[:, :, lo:hi, lo:hi]
    if got.shape != expected.shape:
        return False
    tolerance = EXACT_TOLERANCE * max(1.0, float(whole.abs().max()))
    return bool((got - expected).abs().max() <= tolerance)


def _picture(channels: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """A picture-like input with ``channels`` planes (a grey model gets one plane of it)."""
    return picture_like(1, height, width, generator=generator)[:, :channels]


__all__ = ["EXACT_TOLERANCE", "PROBE_BUDGET", "PROBE_SIDES", "PROBE_VERSION", "Reach", "probe_reach"]
