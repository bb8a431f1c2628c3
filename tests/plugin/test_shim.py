"""The native ``core.paragon`` shim on real VapourSynth: registration, forwarding, errors, vspipe, wheels."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import time
import weakref
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs
from helpers import noise_clip, planes

import vsparagon.plugin
from vsparagon.plugin._native import LIBRARY, ensure_registered

ROOT = Path(__file__).resolve().parents[2]
PARAMETERS = [
    "clip",
    "variant",
    "scale",
    "model",
    "backend",
    "tile",
    "overlap",
    "fp16",
    "threads",
    "device",
    "join",
    "precision",
    "num_streams",
]
MANIFEST = "vapoursynth/plugins/vsparagon/manifest.vs"
VSPIPE = Path(sys.executable).with_name("vspipe")

try:
    from vsparagon.plugin import upscale
except ImportError:  # the Python side is written separately from the shim
    upscale = None
needs_upscale = pytest.mark.skipif(upscale is None, reason="vsparagon.plugin.upscale is not importable yet")


@pytest.fixture(autouse=True)
def _shim_is_built():
    if not LIBRARY.is_file():
        pytest.fail(f"{LIBRARY} is missing: build it with `pip install -e .`")
    ensure_registered()


class _Marker:
    """A FrameEval callback: alive exactly as long as the node that holds it."""

    def __init__(self, clip: vs.VideoNode) -> None:
        self.clip = clip

    def __call__(self, n: int) -> vs.VideoNode:
        return self.clip


def _tracked(clip: vs.VideoNode) -> tuple[vs.VideoNode, weakref.ref[_Marker]]:
    """``clip`` behind a FrameEval, and a weak reference that dies with that node."""
    marker = _Marker(clip)
    return vs.core.std.FrameEval(clip, eval=marker), weakref.ref(marker)


# --- registration ----------------------------------------------------------------------


def test_importing_the_plugin_registers_the_namespace_in_a_fresh_process():
    code = "import vapoursynth as vs, vsparagon.plugin; print(vs.core.paragon.Upscale.signature)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    signature = result.stdout.strip()
    assert [arg.split(":")[0] for arg in signature.rstrip(";").split(";")] == PARAMETERS
    assert signature.startswith("clip:vnode;")
    assert result.stderr == ""


def test_ensure_registered_is_idempotent():
    ensure_registered()
    ensure_registered(vs.core.core)
    assert vs.core.paragon.Upscale.return_signature == "clip:vnode;"


def test_the_shim_needs_no_libpython_of_its_own():
    # it is loaded by `python` and by `vspipe`: a DT_NEEDED libpython could be a second Python
    needed = subprocess.run(["ldd", str(LIBRARY)], capture_output=True, text=True, check=True).stdout
    assert "libpython" not in needed


# --- forwarding, with a recording stand-in for upscale (tests the shim, not the model) ---


def test_every_argument_reaches_upscale_as_a_python_value(monkeypatch):
    calls = []

    def recording_upscale(clip, **kwargs):
        calls.append((clip, kwargs))
        return clip.resize.Point(clip.width * 2, clip.height * 2)

    monkeypatch.setattr(vsparagon.plugin, "upscale", recording_upscale)
    clip = vs.core.std.BlankClip(width=32, height=24, format=vs.RGBS)
    out = vs.core.paragon.Upscale(
        clip, variant="s", scale=2, model="m.onnx", backend="ort-cpu", tile=[64, 48],
        overlap=8, fp16=True, threads=3, device=1, join="blend",
    )  # fmt: skip
    vs.core.paragon.Upscale(clip, tile=64)
    vs.core.paragon.Upscale(clip)

    assert (out.width, out.height) == (64, 48)
    assert [kwargs for _, kwargs in calls] == [
        {
            "variant": "s", "scale": 2, "model": "m.onnx", "backend": "ort-cpu", "tile": (64, 48),
            "overlap": 8, "fp16": True, "threads": 3, "device": 1, "join": "blend",
        },
        {"tile": 64},
        {},
    ]  # fmt: skip
    assert all(isinstance(got, vs.VideoNode) and got.width == 32 for got, _ in calls)
    assert calls[0][1]["fp16"] is True


@pytest.mark.parametrize(
    ("raised", "message"),
    [
        (vs.Error("paragon.Upscale: tile must be positive"), "paragon.Upscale: tile must be positive"),
        (vs.Error("std.Expr: bad expression"), "paragon.Upscale: std.Expr: bad expression"),
        (KeyError("oops"), "paragon.Upscale: KeyError: 'oops'"),
    ],
)
def test_an_exception_in_python_becomes_a_prefixed_vs_error(monkeypatch, raised, message):
    def failing_upscale(clip, **kwargs):
        raise raised

    monkeypatch.setattr(vsparagon.plugin, "upscale", failing_upscale)
    with pytest.raises(vs.Error) as info:
        vs.core.paragon.Upscale(vs.core.std.BlankClip())
    assert str(info.value) == message


def test_a_result_that_is_not_a_clip_is_an_error(monkeypatch):
    monkeypatch.setattr(vsparagon.plugin, "upscale", lambda clip, **kwargs: None)
    with pytest.raises(vs.Error, match=r"^paragon\.Upscale: internal error: upscale\(\) returned NoneType"):
        vs.core.paragon.Upscale(vs.core.std.BlankClip())


@pytest.mark.parametrize("fails", [False, True], ids=["success", "error"])
def test_no_node_outlives_its_users(monkeypatch, fails):
    outputs = []

    def tracking_upscale(clip, **kwargs):
        out, alive = _tracked(clip.std.Invert())
        outputs.append(alive)
        if fails:
            raise vs.Error("paragon.Upscale: planned failure")
        return out

    monkeypatch.setattr(vsparagon.plugin, "upscale", tracking_upscale)
    clip, input_alive = _tracked(vs.core.std.BlankClip(width=16, height=16))
    for _ in range(3):
        try:
            result = vs.core.paragon.Upscale(clip)
            assert outputs[-1]() is not None  # the returned clip holds the node
            del result
        except vs.Error:
            pass
    del clip
    gc.collect()
    assert input_alive() is None, "the shim kept a reference to the input clip"
    assert all(alive() is None for alive in outputs), "the shim kept a reference to a result"


def test_concurrent_calls_get_their_own_arguments_and_results(monkeypatch):
    def slow_upscale(clip, **kwargs):
        time.sleep(0.01)  # lets the other threads' calls start in between
        return clip.resize.Point(clip.width * kwargs["scale"], clip.height)

    monkeypatch.setattr(vsparagon.plugin, "upscale", slow_upscale)
    clip = vs.core.std.BlankClip(width=8, height=8)
    with ThreadPoolExecutor(max_workers=8) as pool:
        widths = list(pool.map(lambda s: vs.core.paragon.Upscale(clip, scale=s).width, range(1, 33)))
    assert widths == [8 * s for s in range(1, 33)]


def test_the_internal_helpers_reject_unknown_tokens():
    with pytest.raises(vs.Error, match="no running call has this token"):
        vs.core.paragon.Fetch_(token=-1)
    with pytest.raises(vs.Error, match="no running call has this token"):
        vs.core.paragon.Bind_(clip=vs.core.std.BlankClip(), token=-1)


# --- the real upscale -------------------------------------------------------------------


@needs_upscale
def test_a_bad_backend_is_a_paragon_upscale_error():
    with pytest.raises(vs.Error, match=r"^paragon\.Upscale: .*nonsense"):
        vs.core.paragon.Upscale(noise_clip(16, 16), backend="nonsense")


@needs_upscale
def test_the_namespace_gives_what_the_python_function_gives(plain_onnx):
    clip = noise_clip(24, 16)
    via_namespace = vs.core.paragon.Upscale(clip, model=plain_onnx, backend="ort-cpu", tile=[24, 8], overlap=4)
    direct = upscale(clip, model=plain_onnx, backend="ort-cpu", tile=(24, 8), overlap=4)
    assert (via_namespace.width, via_namespace.height, via_namespace.format.id) == (48, 32, clip.format.id)
    np.testing.assert_array_equal(planes(via_namespace.get_frame(1)), planes(direct.get_frame(1)))


@needs_upscale
@pytest.mark.skipif(not VSPIPE.is_file(), reason=f"no vspipe next to {sys.executable}")
def test_vspipe_runs_a_script_that_uses_the_namespace(tmp_path, plain_onnx):
    script = tmp_path / "upscale.vpy"
    script.write_text(
        "import vapoursynth as vs\n"
        "import vsparagon.plugin  # an editable install is not autoloaded\n"
        "from vapoursynth import core\n"
        "clip = core.std.BlankClip(width=32, height=24, format=vs.RGBS, length=2)\n"
        f"core.paragon.Upscale(clip, model={plain_onnx!r}, backend='ort-cpu').set_output()\n"
    )
    # vspipe finds libpython through a config file; keep it out of the user's home
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    subprocess.run([sys.executable, "-m", "vapoursynth", "config"], env=env, capture_output=True, check=True)

    result = subprocess.run([VSPIPE, "--info", script], env=env, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:5] == ["Output Index: 0", "Type: Video", "Width: 64", "Height: 48", "Frames: 2"]
    assert all(": " in line for line in lines), f"something else wrote to stdout:\n{result.stdout}"


# --- a regular (non-editable) install ---------------------------------------------------


def _source_tree(dst: Path) -> Path:
    """What an sdist holds, without build outputs of the editable install."""
    for name in ("pyproject.toml", "setup.py", "README.md", "MANIFEST.in"):
        shutil.copy2(ROOT / name, dst / name)
    shutil.copytree(ROOT / "native", dst / "native")
    shutil.copytree(ROOT / "models", dst / "models")
    shutil.copytree(ROOT / "vsparagon", dst / "vsparagon", ignore=shutil.ignore_patterns("__pycache__", "_lib"))
    return dst


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel of this checkout, built offline with the test environment's setuptools and vapoursynth."""
    src = _source_tree(tmp_path_factory.mktemp("src"))
    out = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", out, src]
    subprocess.run(pip, capture_output=True, check=True)
    (path,) = out.glob("vsparagon-*.whl")
    return path


@pytest.mark.slow
def test_the_wheel_ships_the_shim_where_vapoursynth_autoloads_it(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        manifest = zf.read(MANIFEST).decode("ascii")
    # VapourSynth loads each line after the header, plus ".so", from the manifest's folder
    header, *libraries = manifest.splitlines()
    assert header == "[VapourSynth Manifest V1]"
    assert libraries == ["libparagon"]
    assert "vapoursynth/plugins/vsparagon/libparagon.so" in names
    assert "vsparagon/plugin/_lib/libparagon.so" in names  # the LoadPlugin fallback
    assert not [n for n in names if ".cpython-" in n], "the shim must not look like a Python extension"
    assert not [n for n in names if n.startswith("vapoursynth/") and not n.startswith("vapoursynth/plugins/vsparagon/")]
    # the trained models travel inside the package, with their cards
    shipped = sorted(
        p.name for p in (ROOT / "models").glob("paragonsr_*") if p.suffix in (".onnx", ".safetensors", ".md")
    )
    assert "paragonsr_tiny_x2.onnx" in shipped
    assert {f"vsparagon/shipped/{name}" for name in shipped} <= names


@pytest.mark.slow
def test_an_installed_wheel_is_autoloaded_without_importing_vsparagon(wheel, tmp_path):
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", site, wheel]
    subprocess.run(pip, capture_output=True, check=True)
    # a vapoursynth next to the installed wheel, as in one site-packages: its files are
    # links to the real ones, its plugins/ folder is the one the wheel filled
    real = Path(vs.__file__).parent
    for entry in real.iterdir():
        if entry.name not in ("plugins", "__pycache__"):
            (site / "vapoursynth" / entry.name).symlink_to(entry)

    code = (
        "import sys, vapoursynth as vs\n"
        "print(vs.core.paragon.plugin_path)\n"
        "print('vsparagon' in sys.modules)\n"
        "try:\n"
        "    vs.core.paragon.Upscale(vs.core.std.BlankClip(), backend='nonsense')\n"
        "except vs.Error as e:\n"
        "    print(e)\n"
        "clip = vs.core.std.BlankClip(width=24, height=16, format=vs.RGBS, color=[0.2, 0.5, 0.8])\n"
        "out = vs.core.paragon.Upscale(clip, variant='tiny')\n"
        "out.get_frame(0)\n"
        "import vsparagon.catalogue as s\n"
        "print(out.width, out.height, s.shipped_models()['paragonsr_tiny_x2'])\n"
    )
    # -S: no .pth files, so neither the editable vsparagon nor the real vapoursynth/plugins
    # (and cwd=tmp_path: not the checkout, which `python -c` would put first on sys.path)
    # is seen; the dependencies still come from the test environment
    dependencies = Path(np.__file__).parents[1]
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{dependencies}", "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, "-S", "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, check=True
    )

    plugin_path, imported_before_call, error, shipped = result.stdout.splitlines()
    assert Path(plugin_path) == site / "vapoursynth/plugins/vsparagon/libparagon.so"
    assert imported_before_call == "False"
    assert error.startswith("paragon.Upscale: ")
    # variant="tiny" runs the trained model the wheel carries (no repository models/ folder here)
    width, height, model = shipped.split(" ", 2)
    assert (width, height) == ("48", "32")
    assert Path(model) == site / "vsparagon/shipped/paragonsr_tiny_x2.onnx"


def test_import_vsparagon_in_a_script_registers_the_namespace_and_exposes_upscale():
    code = (
        "import vapoursynth as vs, vsparagon\n"
        "assert hasattr(vs.core, 'paragon'), 'core.paragon missing'\n"
        "from vsparagon.plugin import upscale\n"
        "assert vsparagon.upscale is upscale\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
