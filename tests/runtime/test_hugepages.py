"""Huge pages for a runtime's working memory: the range arithmetic, the real kernel advice, a real OpenVINO session."""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vsparagon.runtime import hugepages
from vsparagon.runtime.backends.base import onnx_file
from vsparagon.runtime.source import resolve

MiB = 1 << 20
ADVISABLE = sys.platform == "linux" and hugepages.thp_mode() in ("always", "madvise")

MAPS = """\
55d0c0000000-55d0c0021000 r--p 00000000 08:01 131  /usr/bin/python3.12
55d0c2000000-55d0c2400000 rw-p 00000000 00:00 0    [heap]
7f0000000000-7f0004000000 rw-p 00000000 00:00 0
7f0004000000-7f0008000000 ---p 00000000 00:00 0
7f0008000000-7f0008200000 rw-s 00000000 00:05 77   /dev/shm/x
7f0009000000-7f0009100000 rw-p 00000000 08:01 140  /usr/lib/libfoo.so
7f000a000000-7f000a001000 rw-p 00000000 00:00 0
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0    [stack]
"""


def test_anonymous_ranges_keep_private_anonymous_read_write_memory_only():
    assert hugepages.anonymous_ranges(MAPS) == [
        (0x55D0C2000000, 0x55D0C2400000),  # the heap
        (0x7F0000000000, 0x7F0004000000),
        (0x7F000A000000, 0x7F000A001000),
    ]  # not the binary, PROT_NONE reserve, shared memory, a library's data or the stack


@pytest.mark.parametrize(
    ("before", "after", "new"),
    [
        ([], [(0, 10)], [(0, 10)]),
        ([(0, 10)], [(0, 10)], []),
        ([(0, 10)], [(0, 16)], [(10, 16)]),  # a mapping that grew
        ([(4, 6)], [(0, 10)], [(0, 4), (6, 10)]),  # an old island inside a new mapping
        ([(0, 2), (4, 6), (8, 9)], [(1, 5), (7, 12)], [(2, 4), (7, 8), (9, 12)]),
        ([(0, 3)], [(5, 7), (9, 10)], [(5, 7), (9, 10)]),
        ([(20, 30)], [(0, 10)], [(0, 10)]),  # unmapped since: nothing new there
    ],
)
def test_appeared_is_the_new_memory(before, after, new):
    assert hugepages.appeared(before, after) == new


def test_whole_huge_pages_shrink_to_aligned_spans():
    h = hugepages.HUGE_PAGE
    assert hugepages.whole_huge_pages([(h + 5, 4 * h - 1), (h, 2 * h), (3, h + 7)]) == [(2 * h, 3 * h), (h, 2 * h)]


def test_switch_turns_it_off(monkeypatch):
    monkeypatch.setenv(hugepages.ENV_SWITCH, "0")
    assert not hugepages.enabled()
    tracker = hugepages.Tracker()
    assert not tracker.active
    assert tracker.advise() == 0


def _smaps_line(address: int, field: str) -> list[str]:
    """The words after ``field:`` in /proc/self/smaps for the mapping holding ``address``."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(maxsplit=1)[0]
        if "-" in head and ":" not in head:
            start, end = (int(v, 16) for v in head.split("-"))
            inside = start <= address < end
        elif inside and head == f"{field}:":
            return line.split()[1:]
    raise AssertionError(f"no mapping holds the address, or it has no {field}")


def _huge_kib_at(address: int) -> int:
    """AnonHugePages of the mapping holding ``address``."""
    return int(_smaps_line(address, "AnonHugePages")[0])


def _advised_huge(address: int) -> bool:
    """Whether the mapping holding ``address`` carries MADV_HUGEPAGE (``hg`` in its VmFlags)."""
    return "hg" in _smaps_line(address, "VmFlags")


@pytest.mark.skipif(not ADVISABLE, reason="needs Linux with transparent huge pages (always or madvise)")
def test_advice_before_the_first_write_gives_huge_pages(monkeypatch):
    monkeypatch.delenv(hugepages.ENV_SWITCH, raising=False)
    tracker = hugepages.Tracker()
    memory = mmap.mmap(-1, 64 * MiB, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # mapped, not yet written
    data = np.frombuffer(memory, dtype=np.int32)
    address = data.ctypes.data + 32 * MiB  # its middle (the advice splits off the unaligned ends as mappings)
    assert tracker.advise() >= 62 * MiB
    assert tracker.advised >= 62 * MiB
    data[:] = 7  # the first writes fault it in
    assert _huge_kib_at(address) >= 32 * 1024
    assert (data == 7).all()
    del data
    memory.close()


@pytest.mark.skipif(not ADVISABLE, reason="needs Linux with transparent huge pages (always or madvise)")
def test_the_tracker_advises_new_memory_only(monkeypatch):
    monkeypatch.delenv(hugepages.ENV_SWITCH, raising=False)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    old = mmap.mmap(-1, 32 * MiB, flags=flags)  # made before the tracker
    tracker = hugepages.Tracker()
    new = mmap.mmap(-1, 32 * MiB, flags=flags)
    old_middle = ctypes.addressof(ctypes.c_char.from_buffer(old)) + 16 * MiB
    new_middle = ctypes.addressof(ctypes.c_char.from_buffer(new)) + 16 * MiB
    assert not _advised_huge(old_middle)
    assert not _advised_huge(new_middle)
    tracker.advise()
    assert _advised_huge(new_middle)
    assert not _advised_huge(old_middle)
    old.close()
    new.close()


#: One OpenVINO session without the advice, then one with it, in a fresh process: the case the advice is for
#: (vspipe compiles its sessions early). Run inside a full test run's process (2026-12-07), after earlier tests had
#: left 478 MiB of huge pages in it, the same check saw no growth at all while the tracker still advised 16+ MiB;
#: not pinned down, most likely the new session's buffers reused memory mapped before it, which the advice leaves
#: alone. Prints JSON: AnonHugePages growth (KiB) in each session's first run, bytes advised, outputs equal.
SESSION_CHILD = """
import json, os, sys
from pathlib import Path
import numpy as np
from vsparagon.runtime import hugepages
from vsparagon.runtime.backends import openvino

def anon_huge_kib():
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1])
    raise SystemExit("no AnonHugePages in smaps_rollup")

def session():
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    runtime = openvino.PythonRuntime(openvino.import_openvino(), sys.argv[1], config)
    return openvino.OpenVinoSession(runtime, scale=2, fp16_io=False, streams=1)

batch = np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32)
os.environ[hugepages.ENV_SWITCH] = "0"
plain = session()
before = anon_huge_kib()
expected = plain.run(batch)
plain_growth = anon_huge_kib() - before
del os.environ[hugepages.ENV_SWITCH]
advised = session()
before = anon_huge_kib()
first = advised.run(batch)
growth = anon_huge_kib() - before
print(json.dumps({
    "plain_advised": plain.huge_page_bytes, "plain_growth": plain_growth,
    "advised": advised.huge_page_bytes, "growth": growth,
    "equal": bool(np.array_equal(first, expected) and np.array_equal(advised.run(batch), expected)),
}))
"""


@pytest.mark.skipif(not ADVISABLE, reason="needs Linux with transparent huge pages (always or madvise)")
def test_openvino_session_puts_its_buffers_on_huge_pages(tiny_onnx):
    path, _ = onnx_file(resolve(variant=None, scale=2, model=tiny_onnx), fp16=False)
    env = {key: value for key, value in os.environ.items() if key != hugepages.ENV_SWITCH}
    done = subprocess.run(
        [sys.executable, "-c", SESSION_CHILD, str(path)], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.splitlines()[-1])
    assert got["plain_advised"] == 0
    # 256x256 with 32 to 128 channels in float32: tens of MiB of activations, now on 2 MiB pages
    assert got["advised"] >= 16 * MiB
    if hugepages.thp_mode() == "madvise":  # under "always" the plain session gets huge pages as well
        assert got["growth"] >= got["plain_growth"] + 16 * 1024
    assert got["equal"]  # the advice never changes what is computed
