"""``paragon bench --gpu --bare``: GPU rows skipped with their reasons where no GPU exists, the bare loop, overhead."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import paragon

from vsparagon.bench import mlrt_trt, rows
from vsparagon.cli.bench_cmd import render
from vsparagon.runtime import gpu_info
from vsparagon.runtime.backends import BACKENDS


def test_gpu_and_bare_rows_on_a_machine_without_a_gpu(tiny_onnx, tmp_path):
    result = paragon(
        "bench", "--model", tiny_onnx, "--backend", "ort-cpu", "--gpu", "--bare", "--size", "48x32", "--frames", "2",
        "--no-peers", "--json", cache=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)["results"]
    assert list(results) == [
        "ours-ort-cpu", "bare-ort-cpu", "ours-trt", "bare-trt", "ours-ort-trt", "bare-ort-trt",
        "ours-ort-cuda", "bare-ort-cuda", "ours-torch-cuda", "bare-torch-cuda",
    ]  # fmt: skip
    ours, bare = results["ours-ort-cpu"], results["bare-ort-cpu"]
    assert bare["label"] == "bare ort-cpu"
    assert bare["output"] == ours["output"] == "96x64"
    assert bare["fps"] > 0
    assert bare["precision"] == ours["precision"] == "fp32"
    assert ours["overhead"] == pytest.approx(1 - ours["fps"] / bare["fps"])
    assert "gpu_peak_mib" not in ours  # no NVML here
    for key in ("trt", "ort-trt", "ort-cuda"):
        reason = BACKENDS[key].unavailable()
        assert reason
        assert results[f"ours-{key}"] == results[f"bare-{key}"] == {"skipped": reason}
    assert results["ours-torch-cuda"] == results["bare-torch-cuda"] == {"skipped": gpu_info.torch_cuda_problem()}


def test_gpu_rows_in_the_table_say_why_they_are_skipped(tmp_path):
    """The shipped tiny x2 (its checkpoint lies beside it): torch's row waits for CUDA, vs-mlrt's GPU rows for a GPU."""
    result = paragon(
        "bench", "--backend", "", "--gpu", "--size", "32x32", "--frames", "1", cache=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    shown = {line.split()[0]: line for line in lines[2:]}
    assert list(shown) == ["ours-trt", "ours-ort-trt", "ours-ort-cuda", "ours-torch-cuda", "mlrt-trt", "mlrt-ort-cuda"]
    problem = gpu_info.gpu_report().problem
    assert problem
    assert shown["ours-torch-cuda"].split(None, 1)[1] == f"skipped: {problem}"
    assert shown["mlrt-trt"].split(None, 1)[1] == f"skipped: {problem}"
    assert shown["ours-trt"].split(None, 1)[1] == f"skipped: {BACKENDS['trt'].unavailable()}"


def test_skip_reason_follows_availability(monkeypatch, tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"")
    monkeypatch.setattr(BACKENDS["trt"], "unavailable", classmethod(lambda cls: None))
    assert rows.skip_reason("ours-trt", str(onnx)) is None
    assert rows.skip_reason("bare-trt", str(onnx)) is None
    monkeypatch.setattr(BACKENDS["ort-cuda"], "unavailable", classmethod(lambda cls: "no provider (fake)"))
    assert rows.skip_reason("bare-ort-cuda", str(onnx)) == "no provider (fake)"
    assert rows.skip_reason("ours-ort-cpu", str(onnx)) is None
    assert rows.skip_reason("bare-auto", str(onnx)) is None
    assert rows.skip_reason("bare-warp", str(onnx)) == "unknown backend 'warp'"

    gpu = gpu_info.Gpu(index=0, name="NVIDIA Fake", compute=(8, 9), memory_mib=1)
    monkeypatch.setattr(gpu_info, "gpu_report", lambda: gpu_info.GpuReport(gpus=(gpu,)))
    monkeypatch.setattr(gpu_info, "torch_cuda_build", lambda: "12.4")
    assert rows.skip_reason("mlrt-trt", str(onnx)) is None
    assert "none lies beside m.onnx" in rows.skip_reason("ours-torch-cuda", str(onnx))
    onnx.with_suffix(".safetensors").write_bytes(b"")
    assert rows.skip_reason("ours-torch-cuda", str(onnx)) is None
    assert rows.checkpoint_of(str(onnx)) == onnx.with_suffix(".safetensors")
    assert rows.backend_of("bare-torch-cuda") == "torch"
    monkeypatch.setattr(gpu_info, "torch_cuda_build", lambda: None)
    assert "CPU-only build" in rows.skip_reason("bare-torch-cuda", str(onnx))


def test_overhead_and_gpu_columns():
    row = {"fps": 60.0, "ms_per_frame": 1000 / 60, "peak_mib": 900.0, "setup_s": 2.0}
    results = {
        "ours-trt": {"label": "paragon trt", **row, "gpu_peak_mib": 812.4},
        "bare-trt": {"label": "bare trt", **row, "fps": 64.0, "ms_per_frame": 1000 / 64, "gpu_peak_mib": 700.0},
        "ours-ort-cpu": {"label": "paragon ort-cpu", **row},
        "mlrt-trt": {"skipped": "core.trt is not installed (pip install vapoursynth-mlrt-trt)"},
    }
    rows.add_overheads(results)
    assert results["ours-trt"]["overhead"] == pytest.approx(1 - 60 / 64)
    assert "overhead" not in results["ours-ort-cpu"]  # no bare row to compare with
    report = {"model": "m.onnx", "variant": "tiny", "scale": 2, "input": "1920x1080 RGBS", "warmup": 1, "frames": 8}
    lines = render({**report, "threads": 16, "results": results}).splitlines()
    assert lines[1].split() == ["contender", "fps", "ms/frame", "peak", "MiB", "setup", "s", "GPU", "MiB", "overhead"]
    assert lines[2].split() == ["paragon", "trt", "60.000", "16.7", "900", "2.00", "812", "6.2%"]
    assert lines[3].split() == ["bare", "trt", "64.000", "15.6", "900", "2.00", "700"]
    assert lines[4].split() == ["paragon", "ort-cpu", "60.000", "16.7", "900", "2.00", "-"]
    assert lines[5] == "mlrt-trt              skipped: core.trt is not installed (pip install vapoursynth-mlrt-trt)"


def test_trt_version_codes():
    assert mlrt_trt.trt_version(8601) == (8, 6, 1)
    assert mlrt_trt.trt_version(100800) == (10, 8, 0)
    assert mlrt_trt.trt_version(110002) == (11, 0, 2)


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX shell script stands in for trtexec")
def test_mlrt_engine_built_once_with_vs_mlrt_trtexec(tiny_onnx, tmp_path, monkeypatch):
    """A stand-in trtexec records its arguments and writes an engine; the second call reuses it."""
    monkeypatch.setenv("VSPARAGON_CACHE", str(tmp_path / "cache"))
    plugin = tmp_path / "vapoursynth" / "plugins" / "libvstrt.so"
    with pytest.raises(LookupError, match=r"vs-mlrt trt needs its trtexec, not found at .*vsmlrt-cuda/trtexec"):
        mlrt_trt.engine_for(tiny_onnx, plugin_path=str(plugin), version_code=100800, gpu="G", width=64, height=48)
    tool = mlrt_trt.trtexec_path(plugin)
    tool.parent.mkdir(parents=True)
    log = tmp_path / "calls.txt"
    tool.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        'for a in "$@"; do case "$a" in --saveEngine=*) head -c 4096 /dev/zero > "${a#--saveEngine=}";; esac; done\n'
    )
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    engine, fp16_io = mlrt_trt.engine_for(
        tiny_onnx, plugin_path=str(plugin), version_code=100800, gpu="G", width=64, height=48
    )
    assert engine.stat().st_size == 4096
    assert not fp16_io  # TensorRT 10: the fp32 graph with --fp16
    args = log.read_text().split()
    assert args[0] == f"--onnx={tiny_onnx}"
    assert f"--saveEngine={engine}" in args
    assert f"--shapes={mlrt_trt.input_name(mlrt_trt.Path(tiny_onnx))}:1x3x48x64" in args
    assert args[-1] == "--fp16"
    again, _ = mlrt_trt.engine_for(
        tiny_onnx, plugin_path=str(plugin), version_code=100800, gpu="G", width=64, height=48
    )
    assert again == engine
    assert len(log.read_text().splitlines()) == 1  # built once
    eleven, fp16_io = mlrt_trt.engine_for(
        tiny_onnx, plugin_path=str(plugin), version_code=110000, gpu="G", width=64, height=48
    )
    assert fp16_io  # TensorRT 11: an fp16 graph, no --fp16 flag
    assert eleven != engine
    assert "--fp16" not in log.read_text().splitlines()[1].split()


def test_failed_engine_build_names_the_last_line(tiny_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv("VSPARAGON_CACHE", str(tmp_path / "cache"))
    plugin = tmp_path / "libvstrt.so"
    tool = mlrt_trt.trtexec_path(plugin)
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\necho '[E] Error: could not find any implementation (fake)'\nexit 3\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(
        RuntimeError, match=r"trtexec failed \(exit 3\): \[E\] Error: could not find any implementation"
    ):
        mlrt_trt.engine_for(tiny_onnx, plugin_path=str(plugin), version_code=100800, gpu="G", width=64, height=48)


@pytest.mark.gpu
@pytest.mark.skipif(gpu_info.torch_cuda_problem() is not None, reason="needs a CUDA device and a CUDA build of PyTorch")
def test_torch_cuda_rows_run_on_the_gpu(tmp_path):
    """The shipped tiny x2 through core.paragon.Upscale on CUDA, its bare loop, the overhead and GPU memory."""
    result = paragon(
        "bench", "--backend", "", "--gpu", "--bare", "--size", "256x128", "--frames", "4", "--no-peers", "--json",
        cache=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)["results"]
    ours, bare = results["ours-torch-cuda"], results["bare-torch-cuda"]
    assert ours["label"] == "paragon torch cuda", ours
    assert ours["output"] == bare["output"] == "512x256"
    assert ours["fps"] > 0
    assert bare["fps"] > 0
    assert ours["overhead"] == pytest.approx(1 - ours["fps"] / bare["fps"])
    assert ours["gpu_peak_mib"] > 0
    assert bare["precision"] in ("fp16", "fp32")


def test_gpu_bench_script_reports_every_row_skipped_without_a_gpu(tmp_path):
    if gpu_info.gpu_report().gpus:
        pytest.skip("a GPU is present: the script measures instead (see the gpu-marked tests)")
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_bench.py"
    out = tmp_path / "table.json"
    done = subprocess.run(
        [sys.executable, str(script), "--frames", "1", "--size", "64x32", "--json", str(out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "VSPARAGON_CACHE": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"GPU: none: {gpu_info.gpu_report().problem}\n")
    summary = json.loads(out.read_text())
    assert list(summary["results"]) == ["tiny", "s"]
    assert len(summary["results"]["tiny"]) == 10  # four backends and their bare loops, vs-mlrt's two
    assert len(summary["results"]["s"]) == 8
    for rows_of_model in summary["results"].values():
        assert all(set(r) == {"skipped"} and r["skipped"] for r in rows_of_model.values())
    assert not (tmp_path / "bench").exists()  # nothing exported when nothing can run


def test_gpu_peak_samples_nvml_while_the_block_runs(monkeypatch):
    from vsparagon.bench.measure import GpuPeak

    readings = iter([1000.0, 1200.0, 1900.0, 1500.0])  # MiB in use: at the start, then while sampling
    closed = []
    monkeypatch.setattr(gpu_info, "open_nvml", lambda: "nvml")
    monkeypatch.setattr(gpu_info, "used_mib", lambda nvml, index: next(readings, 1100.0))
    monkeypatch.setattr(gpu_info, "close_nvml", closed.append)
    with GpuPeak(period=0.001) as peak:
        deadline = time.monotonic() + 5
        while peak.result()["gpu_peak_mib"] < 900 and time.monotonic() < deadline:  # the 1900 MiB reading
            time.sleep(0.001)
    assert peak.result() == {"gpu_peak_mib": 900.0}
    assert closed == ["nvml"]


def test_gpu_peak_without_nvml_reports_nothing(monkeypatch):
    from vsparagon.bench.measure import GpuPeak

    monkeypatch.setattr(gpu_info, "open_nvml", lambda: None)
    with GpuPeak() as peak:
        pass
    assert peak.result() == {}
