"""The rows ``paragon bench`` can measure and why a GPU row cannot run here (plain Python, no VapourSynth).

Rows: ``ours-<backend>`` (``core.paragon.Upscale``; ``ours-torch-cuda`` is ``backend="torch"``
on a CUDA GPU), ``bare-<backend>`` (the backend's session alone, :mod:`.bare`) and vs-mlrt's
``mlrt-*`` plugins (:mod:`.contenders`).
"""

from __future__ import annotations

import json
import statistics
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
#: vsparagon as it comes (``backend="auto"``, ``fp16=None``) on an 8-bit copy of the clip: the as-shipped row.
OURS_DEFAULT_8BIT = "ours-default-8bit"
#: The comparisons printed under the table, mode for mode: name -> (our rows, vs-mlrt's rows). Each side is
#: its fastest row present: exact fp32 against vs-mlrt's fp32 (ov with its precision hint forced), our reduced
#: precision against vs-mlrt ov as it comes, and each product as it ships on an 8-bit source.
BARS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "exact (fp32)": (("ours-ort-cpu", "ours-openvino"), ("mlrt-ort", "mlrt-ov")),
    "reduced, float clip": (("ours-openvino-fp16",), ("mlrt-ov-defaults",)),
    "as shipped, 8-bit source": ((OURS_DEFAULT_8BIT,), ("mlrt-ov-defaults-8bit",)),
}


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


def combine_rounds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from the rounds of one contender: the best round's result, with every round's fps and the median.

    A round that did not measure (skipped, failed) makes the row that round's result.
    """
    for run in runs:
        if "fps" not in run:
            return run
    best = dict(max(runs, key=lambda run: float(run["fps"])))
    best["rounds"] = [float(run["fps"]) for run in runs]
    best["fps_median"] = statistics.median(best["rounds"])
    return best


def bars(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Ours / vs-mlrt for each :data:`BARS` comparison whose two sides were both measured.

    ``best``: the fastest of our rows over vs-mlrt's fastest, by best-round fps; ``median``: the same by
    median-round fps (a row measured once is its own median); ``ours`` and ``peer``: the labels of the two
    fastest rows by best round.
    """

    def median(row: dict[str, Any]) -> float:
        return float(row.get("fps_median", row["fps"]))

    out: dict[str, dict[str, Any]] = {}
    for name, sides in BARS.items():
        ours, peers = ([results[key] for key in keys if "fps" in results.get(key, {})] for keys in sides)
        if ours and peers:
            top_ours = max(ours, key=lambda row: float(row["fps"]))
            top_peer = max(peers, key=lambda row: float(row["fps"]))
            out[name] = {
                "best": float(top_ours["fps"]) / float(top_peer["fps"]),
                "median": max(map(median, ours)) / max(map(median, peers)),
                "ours": top_ours["label"],
                "peer": top_peer["label"],
            }
    return out
