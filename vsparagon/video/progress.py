"""A progress line on stderr: frames done, frames per second and time left."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_progress(done: int, total: int, elapsed: float) -> str:
    """``"12/75 frames (16%), 4.30 fps, ETA 0:00:15"``; fps and ETA once a frame is done."""
    percent = 100 * done // total if total else 100
    text = f"{done}/{total} frames ({percent}%)"
    if done > 0 and elapsed > 0:
        fps = done / elapsed
        text += f", {fps:.2f} fps, ETA {format_seconds((total - done) / fps)}"
    return text


def format_seconds(seconds: float) -> str:
    """``H:MM:SS``, rounded up to the second."""
    whole = int(seconds + 0.999)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


class Progress:
    """Reports progress to ``stream``: rewritten in place on a terminal, else a line every ``interval`` s."""

    def __init__(self, label: str, *, stream: TextIO | None = None, interval: float | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.interval = interval if interval is not None else (0.25 if self.tty else 5.0)
        self.start = time.perf_counter()
        self._last = -self.interval
        self._shown = ""

    def update(self, done: int, total: int) -> None:
        """Called by VapourSynth after each frame (``clip.output(progress_update=...)``)."""
        now = time.perf_counter() - self.start
        if done < total and now - self._last < self.interval:
            return
        self._last = now
        line = f"{self.label}: {format_progress(done, total, now)}"
        if self.tty:
            self.stream.write("\r" + line.ljust(len(self._shown)))
        else:
            self.stream.write(line + "\n")
        self._shown = line
        self.stream.flush()

    def finish(self) -> float:
        """End the line on a terminal (once); return the elapsed seconds."""
        if self.tty and self._shown:
            self.stream.write("\n")
            self.stream.flush()
        self._shown = ""
        return time.perf_counter() - self.start
