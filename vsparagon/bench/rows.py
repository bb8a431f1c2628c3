"""The rows ``paragon bench`` can measure and why a GPU row cannot run here (plain Python, no VapourSynth).

Rows: ``ours-<backend>`` (``core.paragon.Upscale``; ``ours-torch-cuda`` is ``backend="torch"``
on a CUDA GPU), ``bare-<backend>`` (the backend's session alone, :mod:`.bare`) and vs-mlrt's
``mlrt-*`` plugins (:mod:`.contenders`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from vsparagon.runtime import gpu_info
from vsparagon.runtime.backends import BACKENDS

#: Our GPU rows (``paragon bench --gpu``).
GPU_OURS = ("ours-trt", "ours-ort-trt", "ours-ort-cuda", "ours-torch-cuda")
#: vs-mlrt's GPU rows: its TensorRT plugin and its ONNX Runtime plugin on the CUDA provider.
GPU_PEERS = ("mlrt-trt", "mlrt-ort-cuda")


def checkpoint_of(model: str) -> Path:
    """``model`` if it is a ``.safetensors`` checkpoint, else the checkpoint shipped beside the ONNX file.

    Raises:
        LookupError: there is none (PyTorch runs checkpoints, not ONNX graphs).
    """
    path = Path(model)
    beside = path.with_name(path.stem.removesuffix("_fp16") + ".safetensors")  # a release's fp16 ONNX too
    for candidate in (path, beside):
        if candidate.suffix == ".safetensors" and candidate.is_file():
            return candidate
    raise LookupError(
        f"torch runs .safetensors checkpoints and none lies beside {path.name} (pass --model X.safetensors)"
    )


def backend_of(key: str) -> str:
    """The ``backend=`` of an ``ours-`` or ``bare-`` row (``torch-cuda`` -> ``torch``)."""
    name = key.removeprefix("ours-").removeprefix("bare-")
    return "torch" if name == "torch-cuda" else name


def skip_reason(key: str, model: str) -> str | None:
    """Why row ``key`` cannot run here (reported as skipped), or None. CPU rows are never skipped here."""
    name = key.removeprefix("ours-").removeprefix("bare-")
    if key in GPU_PEERS:
        report = gpu_info.gpu_report()
        return None if report.gpus else report.problem
    if name == "torch-cuda":
        problem = gpu_info.torch_cuda_problem()
        if problem is not None:
            return problem
        try:
            checkpoint_of(model)
        except LookupError as exc:
            return str(exc)
        return None
    if (f"ours-{name}" in GPU_OURS or key.startswith("bare-")) and name != "auto":
        cls = BACKENDS.get(name)
        return f"unknown backend {name!r}" if cls is None else cls.unavailable()
    return None


def measure_in_child(config: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
    """One row measured in a fresh process (:mod:`.child`), so its peak memory is its own.

    A row still running after ``timeout`` seconds is killed and reported as failed.
    """
    cmd = [sys.executable, "-m", "vsparagon.bench.child", json.dumps(config)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"still running after {timeout:.0f} s: stopped"}
    lines = done.stdout.strip().splitlines()
    if done.returncode == 0 and lines:
        result: dict[str, Any] = json.loads(lines[-1])
        return result
    if done.returncode < 0:
        return {"error": f"killed by signal {-done.returncode} (9: most likely out of memory)"}
    tail = done.stderr.strip().splitlines()
    return {"error": f"exit {done.returncode}: {tail[-1] if tail else 'no message'}"}


def add_overheads(results: dict[str, dict[str, Any]]) -> None:
    """Give each of our rows with a measured bare row its plugin overhead: the share of the bare frame rate lost."""
    for key, r in results.items():
        bare = results.get(key.replace("ours-", "bare-", 1), {})
        if key.startswith("ours-") and "fps" in r and "fps" in bare:
            r["overhead"] = 1 - r["fps"] / bare["fps"]
