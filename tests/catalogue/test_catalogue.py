"""The torch-free catalogue: the model table, shipped names, and reading model files' descriptors."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from vsparagon import catalogue
from vsparagon.catalogue import ShippedName, locate, read_onnx, read_safetensors_descriptor, shipped_models
from vsparagon.catalogue.files import safetensors_metadata
from vsparagon.catalogue.table import architecture_of, check_scale, split_arch, variant_spec
from vsparagon.errors import CheckpointError, ConfigError

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models"


def test_the_table_is_the_seed_table():
    assert catalogue.variant_names("paragonsr") == [f"paragonsr_{v}" for v in ("tiny", "xs", "s", "m", "l", "xl")]
    assert dict(variant_spec("tiny")) == {"dim": 32, "num_groups": 3, "blocks_per_group": 3}
    assert dict(variant_spec("paragonsr_XL")) == {"dim": 160, "num_groups": 12, "blocks_per_group": 12}
    assert catalogue.SCALES == (1, 2, 3, 4)
    assert architecture_of("s").name == "paragonsr"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("tiny", "paragonsr_tiny"), (" TINY ", "paragonsr_tiny"), ("paragonsr_m", "paragonsr_m")],
)
def test_canonical_variant(name, expected):
    assert catalogue.canonical_variant(name) == expected


def test_unknown_variant_and_scale_list_what_is_valid():
    with pytest.raises(ConfigError, match=r"unknown variant 'huge'; valid variants: tiny, xs, s, m, l, xl"):
        catalogue.canonical_variant("huge")
    with pytest.raises(ConfigError, match="unsupported scale 5; supported scales: 1, 2, 3, 4"):
        catalogue.check_scale(5)
    with pytest.raises(ConfigError, match="unsupported scale True"):
        catalogue.check_scale(True)


@pytest.mark.parametrize(
    ("stem", "parts"),
    [
        ("paragonsr_tiny_x2", ("paragonsr", "tiny", 2)),
        ("paragonsr_tiny_video_x2", ("paragonsr", "tiny_video", 2)),
        ("paragonsr_xs_x4", ("paragonsr", "xs", 4)),
    ],
)
def test_shipped_names_round_trip(stem, parts):
    name = ShippedName.parse(stem)
    assert name is not None
    assert (name.arch, name.key, name.scale) == parts
    assert name.stem == stem
    assert ShippedName.of(name.selector, name.scale) == name


@pytest.mark.parametrize(
    "stem", ["tiny_x2", "paragonsr_x2", "paragonsr_tiny", "paragonsr_tiny_x0", "PARAGONSR_tiny_x2"]
)
def test_other_stems_are_not_shipped_names(stem):
    assert ShippedName.parse(stem) is None


def test_release_keys_are_not_variants():
    video = ShippedName.parse("paragonsr_tiny_video_x2")
    assert video is not None
    assert video.selector == "tiny_video"
    with pytest.raises(ConfigError):
        catalogue.canonical_variant(video.selector)  # a release key, not an architecture size
    descriptor = read_onnx(MODELS / "paragonsr_tiny_video_x2.onnx").descriptor
    assert descriptor is not None
    assert descriptor.variant == "paragonsr_tiny"  # the release says which variant it is


def test_shipped_models_in_table_order():
    assert list(shipped_models()) == [
        "paragonsr_tiny_x2",
        "paragonsr_tiny_x4",
        "paragonsr_tiny_video_x2",
    ]


def test_name_or_path():
    assert locate("tiny", scale=2) == MODELS / "paragonsr_tiny_x2.onnx"
    assert locate("paragonsr_tiny_video", scale=2) == MODELS / "paragonsr_tiny_video_x2.onnx"
    assert locate("some/dir/m.onnx", scale=2) == Path("some/dir/m.onnx")
    assert locate("m.safetensors", scale=2) == Path("m.safetensors")
    assert locate(Path("m"), scale=2) == Path("m")  # a Path is always a path
    with pytest.raises(ConfigError, match=r"no trained model ships for variant 'xs' at scale 2 .*'tiny' scale=2"):
        locate("xs", scale=2)
    with pytest.raises(ConfigError, match=r"unknown variant 'huge'; valid variants: .* \(and shipped: tiny_video\)"):
        locate("huge", scale=2)


def test_descriptors_are_read_without_torch():
    code = (
        "import sys\n"
        "from vsparagon.catalogue import read_onnx, read_safetensors_descriptor\n"
        f"a = read_safetensors_descriptor({str(MODELS / 'paragonsr_tiny_x2.safetensors')!r})\n"
        f"b = read_onnx({str(MODELS / 'paragonsr_tiny_x2_fp16.onnx')!r})\n"
        "print(a.variant, a.scale, a.fused, b.descriptor.receptive_radius, b.precision, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["paragonsr_tiny", "2", "True", "60", "fp16", "False"]


def test_a_foreign_onnx_has_no_descriptor(fixed_size_onnx):
    info = read_onnx(fixed_size_onnx)
    assert info.descriptor is None
    assert info.precision == "fp32"
    assert (info.inputs, info.outputs) == (1, 1)
    assert info.input_shape == ("n", 3, "h", "w")


def _header_file(path: Path, header: object, extra: bytes = b"") -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + extra)
    return path


def test_safetensors_header_without_torch(tmp_path):
    path = _header_file(tmp_path / "m.safetensors", {"__metadata__": {"a": "b"}, "x": {}})
    assert safetensors_metadata(path) == {"a": "b"}
    assert safetensors_metadata(_header_file(tmp_path / "n.safetensors", {"x": {}})) == {}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "shorter than a safetensors header"),
        (struct.pack("<Q", 10**12) + b"{}", "does not fit"),
        (struct.pack("<Q", 4) + b"{no}", "not a readable safetensors checkpoint"),
        (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
    ],
)
def test_bad_safetensors_headers(tmp_path, content, message):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"bad\.safetensors: not a readable safetensors checkpoint") as err:
        safetensors_metadata(path)
    assert message in str(err.value)


def test_foreign_safetensors_and_bad_metadata(tmp_path):
    with pytest.raises(CheckpointError, match="without vsparagon metadata"):
        read_safetensors_descriptor(_header_file(tmp_path / "f.safetensors", {"x": {}}))
    wrong = _header_file(tmp_path / "w.safetensors", {"__metadata__": {"vsparagon": "{oops"}})
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_safetensors_descriptor(wrong)


def test_an_unreadable_onnx_is_named(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x00not onnx\xff" * 50)
    with pytest.raises(CheckpointError, match=r"junk\.onnx' is not a loadable ONNX file"):
        read_onnx(path)


def test_split_arch_defaults_to_paragonsr():
    assert split_arch("tiny")[0].name == "paragonsr"
    assert split_arch("paragonsr_tiny_video")[1] == "tiny_video"


def test_the_research_architectures_are_in_the_table():
    """Seeds 003 and 004: two presets each, x2 and x4, named with their architecture's prefix."""
    assert catalogue.variant_names("ehrsr") == ["ehrsr_tiny", "ehrsr_base"]
    assert catalogue.variant_names("hermes") == ["hermes_tiny", "hermes_base"]
    assert architecture_of("EHRSR_tiny").name == "ehrsr"
    assert catalogue.ARCHITECTURES["hermes"].scales == (2, 4)
    with pytest.raises(ConfigError, match="supported scales: 2, 4"):
        check_scale(3, "hermes")
