"""``core.paragon.Upscale`` beside vs-mlrt's OpenVINO plugin, in a plain script under vspipe.

VapourSynth autoloads vs-mlrt's ``libvsov`` (and the OpenVINO build it bundles) when it
creates the core, before the script runs; the ``openvino`` Python module then refuses to
load. ``backend="openvino"`` must still work (through OpenVINO's C API, on vs-mlrt's
build), ``auto`` must still pick it, and ``core.ov.Model`` must work in the same script.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs
from helpers import planes

import vsparagon.plugin
from vsparagon.plugin import upscale
from vsparagon.runtime import sessions
from vsparagon.runtime.backends import openvino, openvino_c

VSPIPE = Path(sys.executable).with_name("vspipe")
PLUGINS = Path(vs.__file__).parent / "plugins"
MLRT_OV = PLUGINS / "ov"
WIDTH, HEIGHT, FRAMES = 64, 48, 2


def picture(core, width, height, length):
    """Blocks of 16 colours enlarged with bicubic: edges, gradients and ringing (VapourSynth's own filters only)."""
    colors = [[(i * 0.37 + c * 0.29) % 1.0 for c in range(3)] for i in range(16)]
    tiles = [core.std.BlankClip(width=width // 8, height=height // 8, format=vs.RGBS, length=length, color=c)
             for c in colors]  # fmt: skip
    rows = [core.std.StackHorizontal(tiles[r * 4 : r * 4 + 4]) for r in range(4)]
    return core.std.StackVertical(rows).resize.Bicubic(width, height)


PLAIN_SCRIPT = f"""
import vapoursynth as vs

{inspect.getsource(picture)}
core = vs.core
model = globals()["model"]
clip = picture(core, {WIDTH}, {HEIGHT}, {FRAMES})
ours = core.paragon.Upscale(clip, model=model, backend="openvino")
auto = core.paragon.Upscale(clip, model=model, backend="auto")
mlrt = core.ov.Model(clip, network_path=model, device="CPU", config=lambda: {{"INFERENCE_PRECISION_HINT": "f32"}})
core.std.StackVertical([ours, auto, mlrt]).set_output()

# what this process holds, for the test: did the Python bindings load, and whose runtime is in memory
try:
    import openvino  # noqa: F401
    bindings = "loaded"
except ImportError:
    bindings = "refused"
with open("/proc/self/maps") as maps:
    runtime = next((line.split()[-1] for line in maps if "/libopenvino.so." in line), "none")
with open(globals()["report"], "w") as report:
    report.write(bindings + "\\n" + runtime + "\\n")
"""


def _same_release() -> bool:
    """Whether vs-mlrt bundles the ``openvino`` package's release (one soname: the clash)."""
    package = Path(openvino.import_openvino().__file__).parent
    return bool({p.name for p in (package / "libs").glob("libopenvino.so.*")} & {p.name for p in MLRT_OV.glob("*")})


@pytest.mark.skipif(
    not MLRT_OV.is_dir(),
    reason="vs-mlrt's OpenVINO plugin is not installed: pip install vapoursynth-mlrt-ov (in the 'bench' extra)",
)
def test_a_plain_script_runs_openvino_beside_vs_mlrt(tiny_onnx, tmp_path):
    script, report = tmp_path / "plain.vpy", tmp_path / "report.txt"
    script.write_text(PLAIN_SCRIPT)
    env = dict(os.environ)
    if not (PLUGINS / "vsparagon").is_dir():  # an editable install: autoload the shim from the package, after vs-mlrt
        env["VAPOURSYNTH_EXTRA_PLUGIN_PATH"] = str(vsparagon.plugin._native.LIBRARY.parent)
    done = subprocess.run(
        [str(VSPIPE), "-a", f"model={tiny_onnx}", "-a", f"report={report}", str(script), "-"],
        capture_output=True,
        env=env,
        timeout=600,
    )
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 0, stderr[-3000:]
    assert "skips OpenVINO" not in stderr  # auto kept OpenVINO

    bindings, runtime = report.read_text().split()
    if _same_release():  # the case users meet: vs-mlrt's build got in first, the Python module refused it: C API
        assert (bindings, Path(runtime).parent) == ("refused", MLRT_OV)
    else:  # two releases, two library names: the Python module runs beside vs-mlrt's build, no C API needed
        assert bindings == "loaded", "the openvino module refused a build of another release"

    size = 3 * (2 * WIDTH) * (3 * 2 * HEIGHT)  # RGBS, three 2x clips stacked
    frames = np.frombuffer(done.stdout, dtype=np.float32).reshape(FRAMES, 3, 3, 2 * HEIGHT, 2 * WIDTH)
    frames = frames[:, [2, 0, 1]]  # vspipe writes RGB planes as G, B, R
    assert len(done.stdout) == FRAMES * size * 4
    clip = picture(vs.core, WIDTH, HEIGHT, FRAMES)
    normal = upscale(clip, model=tiny_onnx, backend="openvino")  # this process: the Python bindings, own build
    for n in range(FRAMES):
        expected = planes(normal.get_frame(n)).astype(np.float32)
        ours, auto, mlrt = (frames[n, :, k] for k in range(3))
        np.testing.assert_array_equal(ours, expected)
        np.testing.assert_array_equal(auto, expected)
        # vs-mlrt runs the graph as given, we run its CPU rewrite: the same values up to rounding
        np.testing.assert_allclose(mlrt, expected, atol=1e-4)


def test_no_usable_openvino_fails_with_the_fix_and_auto_says_why_once(tiny_onnx, monkeypatch, capsys):
    """The Python module refuses the build in the process and no C library for it loads (simulated)."""

    def clash():
        raise openvino.OpenVinoClash("the openvino Python module refuses to run on the other build")

    monkeypatch.setattr(openvino, "import_openvino", clash)
    monkeypatch.setattr(openvino_c, "_c_api_candidates", lambda runtime: [])
    openvino_c.loaded_c_api.cache_clear()
    sessions._say_once.cache_clear()
    clip = vs.core.std.BlankClip(width=16, height=16, format=vs.RGBS, length=1)
    try:
        with pytest.raises(vs.Error) as error:
            upscale(clip, model=tiny_onnx, backend="openvino", threads=7)  # threads: a session no other test opens
        for _ in range(2):
            upscale(clip, model=tiny_onnx, backend="auto", threads=7).get_frame(0)  # ONNX Runtime instead
    finally:
        openvino_c.loaded_c_api.cache_clear()  # the next caller loads the real one again
    message = str(error.value)
    assert message.startswith("paragon.Upscale: another OpenVINO build (")
    assert "its C API did not load (no libopenvino_c beside libopenvino.so." in message
    assert message.endswith(openvino.CLASH_HINT)
    err = capsys.readouterr().err
    assert err == f"vsparagon: backend='auto' skips OpenVINO: {message.removeprefix('paragon.Upscale: ')}\n"
