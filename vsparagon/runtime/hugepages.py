"""Transparent huge pages for a CPU runtime's working memory (Linux).

A frame's activations take hundreds of MiB (tiny x2 at 640x480: about 340 MiB in bf16 with two
streams), far more than the CPU's TLBs cover in 4 KiB pages, and every layer streams through
them. Where the kernel's transparent huge pages are in ``madvise`` mode (the default of Debian
and Ubuntu), memory gets 2 MiB pages only when its owner asks, and neither OpenVINO nor glibc's
``malloc`` asks unless the process starts with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``, which
a plugin inside vspipe cannot set. So a session asks for them itself: it notes the process's
anonymous memory before it compiles a shape, and right after the compile and after making each
infer request (OpenVINO has allocated the buffers then, but not written them) it advises the memory
that appeared since as huge (``MADV_HUGEPAGE``), so the first inference faults it in as 2 MiB pages.

Collapsing memory after it was written (``MADV_COLLAPSE``) would also catch what is allocated later,
but it copies: 2.2 GB took 6 s on the 2-core EPYC, and a two-frame 4K run was about 3 s slower with
it. Advice before the first write copies nothing. Measured on that machine (docs/performance.md,
"Huge pages"): about +3% at 640x480 through the plugin; at 4K no gain beyond noise, and 1-3 s more
setup.

The advice keeps the contents as they are: this changes only how the memory is mapped, so it is
safe on memory the runtime owns and uses from other threads (``khugepaged`` does the same to
every advised region all the time). ``VSPARAGON_HUGE_PAGES=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from pathlib import Path

ENV_SWITCH = "VSPARAGON_HUGE_PAGES"
MADV_HUGEPAGE = 14
HUGE_PAGE = 2 << 20
THP_ENABLED = Path("/sys/kernel/mm/transparent_hugepage/enabled")
MAPS = Path("/proc/self/maps")

Ranges = list[tuple[int, int]]


def thp_mode() -> str:
    """The kernel's transparent-huge-page mode (``always``, ``madvise``, ``never``); ``""`` where unknown."""
    try:
        text = THP_ENABLED.read_text()
    except OSError:
        return ""
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else ""


def switched_off() -> bool:
    """True when ``$VSPARAGON_HUGE_PAGES`` is ``0`` (or ``off``/``no``/``false``)."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "off", "no", "false")


def _why_not() -> str | None:
    """Why sessions do not advise huge pages here (the ``paragon info`` wording), or None where they do."""
    if switched_off():
        return f"off ({ENV_SWITCH}={os.environ[ENV_SWITCH]})"
    if sys.platform != "linux":
        return "not used (Linux only)"
    mode = thp_mode()
    if mode not in ("always", "madvise"):
        return f"not used: the kernel's transparent huge pages are {mode or 'not available'}"
    return None


def enabled() -> bool:
    """True where sessions advise huge pages: Linux, transparent huge pages not ``never``, and not switched off."""
    return _why_not() is None


def describe() -> str:
    """One line for ``paragon info``: whether sessions put their buffers on huge pages here, and why not."""
    return _why_not() or f"openvino's working memory on 2 MiB pages (transparent huge pages: {thp_mode()})"


def anonymous_ranges(maps_text: str | None = None) -> Ranges:
    """The process's private anonymous read-write mappings (``[heap]`` included), sorted ``(start, end)``."""
    if maps_text is None:
        try:
            maps_text = MAPS.read_text()
        except OSError:
            return []
    ranges = []
    for line in maps_text.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 5 or not fields[1].startswith("rw") or fields[1][3:4] != "p":
            continue
        name = fields[5].strip() if len(fields) == 6 else ""
        if name not in ("", "[heap]"):
            continue
        start, _, end = fields[0].partition("-")
        ranges.append((int(start, 16), int(end, 16)))
    return sorted(ranges)


def appeared(before: Ranges, after: Ranges) -> Ranges:
    """The parts of ``after`` that ``before`` does not cover (both sorted, non-overlapping)."""
    out: Ranges = []
    i = 0
    for start, end in after:
        cursor = start
        while i < len(before) and before[i][1] <= cursor:
            i += 1
        j = i
        while cursor < end and j < len(before) and before[j][0] < end:
            if before[j][0] > cursor:
                out.append((cursor, before[j][0]))
            cursor = max(cursor, before[j][1])
            j += 1
        if cursor < end:
            out.append((cursor, end))
    return out


def whole_huge_pages(ranges: Ranges) -> Ranges:
    """Each range shrunk to the 2 MiB-aligned span inside it; those shorter than one huge page dropped."""
    out = []
    for start, end in ranges:
        lo = -(-start // HUGE_PAGE) * HUGE_PAGE
        hi = end // HUGE_PAGE * HUGE_PAGE
        if hi > lo:
            out.append((lo, hi))
    return out


@functools.cache
def _madvise() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    try:
        fn = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


class Tracker:
    """Advises huge pages for the memory that appears after it is made (see the module's docstring)."""

    def __init__(self) -> None:
        self.active = enabled()
        self._before = anonymous_ranges() if self.active else []
        self.advised = 0
        """Bytes advised as huge so far (the largest of the calls: each covers the ones before)."""

    def advise(self) -> int:
        """Advise what appeared since this tracker was made as huge; returns the bytes advised.

        Memory not yet written then gets 2 MiB pages as it is first written; nothing is copied. Errors are
        ignored: a range may have been unmapped since ``/proc/self/maps`` was read (ENOMEM).
        """
        madvise = _madvise() if self.active else None
        if madvise is None:
            return 0
        done = 0
        for start, end in whole_huge_pages(appeared(self._before, anonymous_ranges())):
            if madvise(start, end - start, MADV_HUGEPAGE) == 0:
                done += end - start
        self.advised = max(self.advised, done)
        return done
