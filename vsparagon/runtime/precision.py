"""Which reduced precision this CPU runs natively, and when ``fp16=None`` takes it.

Measured on real pictures by ``benchmarks/precision.py`` (table and command in
``docs/performance.md``): OpenVINO's bf16 on a CPU with AVX-512 BF16 doubles the speed and
keeps the x2 models' 8-bit output within one code value of fp32 (tiny_video x2: two on under
0.1% of photo samples), but moves tiny x4's by up to two, and every model's 10-bit output by
several. So ``fp16=None`` takes reduced precision only where all
of these hold: the CPU computes it in hardware (never emulated); the model is one of ours
(measured), of the bounded, overflow-safe design, at most x2; the clip's samples are
integers of at most 8 bits. Anything else runs fp32; ``fp16=True`` asks for reduced
precision regardless of the clip.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

from vsparagon.catalogue import ModelDescriptor

#: CPU flags (``/proc/cpuinfo``) under which a reduced precision runs in hardware, by precision.
NATIVE_FLAGS = {"bf16": ("avx512_bf16", "amx_bf16"), "fp16": ("avx512_fp16", "amx_fp16", "asimdhp")}
#: The deepest integer clip ``fp16=None`` runs in reduced precision (see the module docstring).
REDUCED_MAX_BITS = 8
#: The largest scale whose models ``fp16=None`` runs in reduced precision (x4 moved 8-bit output by 2).
REDUCED_MAX_SCALE = 2


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (empty where there is no ``/proc/cpuinfo``)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


@functools.cache
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def native_reduced(flags: frozenset[str] | None = None) -> str | None:
    """``"bf16"`` or ``"fp16"``: the reduced precision this CPU computes in hardware (bf16 first), or None."""
    flags = cpu_flags() if flags is None else flags
    for precision, needs in NATIVE_FLAGS.items():
        if flags & set(needs):
            return precision
    return None


def describe_cpu() -> str:
    """The CPU's name and the reduced precisions it runs natively, for ``paragon info`` and benchmarks."""
    flags = cpu_flags()
    native = [f.upper().replace("_", "-") for needs in NATIVE_FLAGS.values() for f in needs if f in flags]
    return f"{cpu_name()} ({', '.join(native) if native else 'no native bf16/fp16'})"


def reduced_by_default(descriptor: ModelDescriptor, *, bits: int | None, flags: frozenset[str] | None = None) -> bool:
    """Whether ``fp16=None`` runs reduced precision on the CPU for this model and a clip of ``bits``.

    ``bits`` is the clip's integer sample depth, or None for a float clip (which keeps fp32).
    """
    return (
        native_reduced(flags) is not None
        and descriptor.arch == "paragonsr"
        and descriptor.fp16_safe
        and descriptor.scale <= REDUCED_MAX_SCALE
        and bits is not None
        and bits <= REDUCED_MAX_BITS
    )
