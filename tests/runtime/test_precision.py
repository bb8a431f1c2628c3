"""The precision rule: which reduced precision the CPU runs natively, and when ``fp16=None`` takes it."""

from __future__ import annotations

import dataclasses

import pytest

from vsparagon.catalogue import ModelDescriptor
from vsparagon.runtime import precision
from vsparagon.runtime.backends import openvino
from vsparagon.runtime.source import resolve

AVX2 = frozenset({"sse4_2", "avx2", "fma"})
BF16 = AVX2 | {"avx512f", "avx512_bf16"}
AMX = AVX2 | {"amx_bf16", "amx_tile"}
FP16 = AMX | {"amx_fp16", "avx512_fp16"}


def _tiny(scale: int = 2) -> ModelDescriptor:
    return resolve(variant="tiny", scale=scale, model=None).descriptor


@pytest.mark.parametrize(("flags", "native"), [(AVX2, None), (BF16, "bf16"), (AMX, "bf16"), (FP16, "bf16"),
                                               (frozenset({"fphp", "asimdhp"}), "fp16")])  # fmt: skip
def test_native_reduced_precision_from_the_cpu_flags(flags, native):
    assert precision.native_reduced(flags) == native


def test_the_flags_agree_with_openvinos_own_report():
    """What /proc/cpuinfo says about bf16 is what OpenVINO's CPU plugin finds (BF16 in its capabilities)."""
    capabilities = openvino.shared_core(openvino.import_openvino()).get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert ("BF16" in capabilities) == (precision.native_reduced() == "bf16"), (capabilities, precision.describe_cpu())


def test_default_is_reduced_only_for_8_bit_clips_of_our_bounded_x2_models_on_native_hardware():
    tiny = _tiny()
    assert precision.reduced_by_default(tiny, bits=8, flags=BF16)
    assert not precision.reduced_by_default(tiny, bits=8, flags=AVX2)  # emulated: never by default
    assert not precision.reduced_by_default(tiny, bits=10, flags=BF16)  # several code values off at 10 bits
    assert not precision.reduced_by_default(tiny, bits=None, flags=BF16)  # float clips keep fp32
    assert not precision.reduced_by_default(_tiny(scale=4), bits=8, flags=BF16)  # x4 moved 8-bit output by 2
    unbounded = dataclasses.replace(tiny, fp16_safe=False)
    assert not precision.reduced_by_default(unbounded, bits=8, flags=BF16)
    foreign = dataclasses.replace(tiny, arch="spandrel:SPAN")
    assert not precision.reduced_by_default(foreign, bits=8, flags=BF16)  # not measured: fp32


def test_openvino_names_the_precision_it_compiled_for():
    assert [openvino.precision_name(t) for t in ("bf16", "f16", "f32", "<Type: 'bfloat16'>", "<Type: 'float32'>")] == [
        "bf16", "fp16", "fp32", "bf16", "fp32"]  # fmt: skip


def test_describe_cpu_names_the_native_precisions():
    text = precision.describe_cpu()
    assert text.startswith(precision.cpu_name())
    assert ("AVX512-BF16" in text or "AMX-BF16" in text) == (precision.native_reduced() == "bf16")
