"""OpenVINO through its C API (the path beside vs-mlrt), checked against the Python bindings on one build.

Here the process has the ``openvino`` package's own build (conftest imports it first), so both
paths run the same runtime and must agree exactly. The path beside vs-mlrt's build, in a plain
``.vpy`` under vspipe, is ``tests/plugin/test_beside_mlrt.py``.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from vsparagon.runtime.backends import openvino, openvino_c
from vsparagon.runtime.backends.base import BackendError, onnx_file
from vsparagon.runtime.source import resolve

CONFIG = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}


def _sessions(path: Path, fp16_io: bool, streams: int = 1) -> tuple[openvino.OpenVinoSession, ...]:
    python = openvino.PythonRuntime(openvino.import_openvino(), path, CONFIG)
    c = openvino_c.CRuntime(openvino_c.loaded_c_api(), path, CONFIG)
    return tuple(openvino.OpenVinoSession(r, scale=2, fp16_io=fp16_io, streams=streams) for r in (python, c))


def test_the_c_api_runs_on_the_build_in_the_process():
    api = openvino_c.loaded_c_api()
    assert openvino_c.loaded_runtime() is not None
    assert api.path.parent == openvino_c.loaded_runtime().parent  # its own build's C library
    assert api.version == openvino.import_openvino().get_version()


@pytest.mark.parametrize("fp16", [False, True], ids=["fp32-graph", "fp16-graph"])
def test_c_api_output_equals_the_python_bindings(tiny_onnx, fp16):
    path, fp16_io = onnx_file(resolve(variant=None, scale=2, model=tiny_onnx), fp16=fp16)
    python, c = _sessions(path, fp16_io)
    batch = np.random.default_rng(0).random((2, 3, 24, 40), dtype=np.float32)
    expected = python.run(batch)
    got = c.run(batch)
    assert got.dtype == np.float32
    assert got.shape == (2, 3, 48, 80)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(c.run(batch[:1, :, :16, :16]), python.run(batch[:1, :, :16, :16]))  # a new shape


def test_c_api_session_runs_from_many_threads(tiny_onnx):
    python, c = _sessions(Path(tiny_onnx), fp16_io=False, streams=2)
    batches = [np.random.default_rng(i).random((1, 3, 20, 28), dtype=np.float32) for i in range(6)]
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        results[i] = c.run(batches[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, batch in enumerate(batches):
        np.testing.assert_array_equal(results[i], python.run(batch))


def test_c_api_errors_name_the_file_and_openvinos_reason(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    # the call's own status first; the process-wide last error only as a hint
    with pytest.raises(
        BackendError, match=r"^OpenVINO could not read broken\.onnx: \w[^(]*\(OpenVINO's last error in "
    ):
        openvino_c.CRuntime(openvino_c.loaded_c_api(), bad, CONFIG)


@pytest.mark.parametrize(
    ("version", "f16", "f32"),
    [("2024.6.0-17404-4c0f47d2335", 4, 5), ("2025.4.0-20398-8fdad55727d", 4, 5), ("2026.0.0-1-abc", 3, 4),
     ("2026.4.1-22982-e213a147257", 3, 4)],
)  # fmt: skip
def test_element_type_codes_follow_the_c_apis_release(version, f16, f32):
    # 2026.0 removed UNDEFINED from ov_element_type_e: F16 and F32 moved down by one
    assert openvino_c.element_types(version) == {np.dtype(np.float16): f16, np.dtype(np.float32): f32}
    with pytest.raises(BackendError, match="element types are unknown"):
        openvino_c.element_types("custom")


def test_the_loaded_c_api_uses_its_own_releases_codes():
    api = openvino_c.loaded_c_api()
    assert api.element_types == openvino_c.element_types(api.version)
    assert api.element_types[np.dtype(np.float32)] == (4 if int(api.version.split(".")[0]) >= 2026 else 5)


SIGNAL_AFTER_SESSIONS = """
import os, signal, sys
import numpy as np
from pathlib import Path
from vsparagon.runtime.backends import openvino, openvino_c
path, config = Path(sys.argv[1]), {"INFERENCE_PRECISION_HINT": "f32"}
ov = openvino.import_openvino()
runtimes = [openvino.PythonRuntime(ov, path, config), openvino_c.CRuntime(openvino_c.loaded_c_api(), path, config),
            openvino.PythonRuntime(ov, path, config)]
sessions = [openvino.OpenVinoSession(r, scale=2, fp16_io=False, streams=1) for r in runtimes]
outputs = [session.run(np.zeros((1, 3, 8, 8), np.float32)) for session in sessions]
del runtimes
for i in range(len(sessions)):  # in the order they were made, not the reverse
    sessions[i] = None
signal.signal(signal.SIGUSR1, lambda *_: print("handled", flush=True))  # CPython handlers run on the signal stack
os.kill(os.getpid(), signal.SIGUSR1)
"""


def test_sessions_freed_in_any_order_leave_signals_working(tiny_onnx):
    """OpenVINO's CPU plugin swaps the thread's signal stack and puts back a freed one when cores die out of order."""
    done = subprocess.run(
        [sys.executable, "-c", SIGNAL_AFTER_SESSIONS, tiny_onnx], capture_output=True, text=True, timeout=300
    )
    assert (done.returncode, done.stdout) == (0, "handled\n"), done.stderr[-2000:]
