"""``--frames START:END``: which frames to keep, and the matching stretch of time."""

from __future__ import annotations

from fractions import Fraction

from vsparagon.errors import ConfigError


def parse_frames(text: str | None, num_frames: int) -> tuple[int, int]:
    """``START:END`` (END excluded, like a Python slice; either may be left out) -> (start, end).

    Raises:
        ConfigError: not ``START:END``, or out of ``0 <= START < END <= num_frames``.
    """
    if text is None:
        return 0, num_frames
    first, colon, last = text.partition(":")
    usage = f"--frames takes START:END (e.g. 0:100, or 50: to the end), got {text!r}"
    if not colon:
        raise ConfigError(usage)
    try:
        start = int(first) if first.strip() else 0
        end = int(last) if last.strip() else num_frames
    except ValueError:
        raise ConfigError(usage) from None
    if not 0 <= start < end <= num_frames:
        raise ConfigError(
            f"--frames {text} is out of range: the input has {num_frames} frames, so 0 <= START < END <= {num_frames}"
        )
    return start, end


def time_span(start: int, end: int, num_frames: int, fps: Fraction) -> tuple[float, float | None]:
    """(start in seconds, duration in seconds or None when the frames run to the end)."""
    if fps <= 0:  # variable frame rate without a nominal rate: keep all audio
        return 0.0, None
    begin = float(start / fps)
    return begin, None if end == num_frames else float((end - start) / fps)
