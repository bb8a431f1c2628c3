"""An engine for vs-mlrt's ``core.trt.Model``, built with the ``trtexec`` it ships (no VapourSynth here).

vs-mlrt's TensorRT plugin runs serialized engines, not ONNX; its wheel ships ``trtexec`` in
``vsmlrt-cuda`` beside the plugin. The engine is built for the benchmark's static shape in fp16,
the way vsmlrt.py's ``Backend.TRT(fp16=True)`` builds it, once, into the cache folder.
TensorRT 11 dropped ``--fp16``: there the graph given is our fp16 ONNX (fp16 input and output).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from vsparagon._files import cache_dir
from vsparagon.runtime.backends.base import onnx_file
from vsparagon.runtime.source import open_model

#: The seconds a build may take before the row is reported failed.
BUILD_TIMEOUT_S = 1800


def trt_version(code: int) -> tuple[int, int, int]:
    """``core.trt.Version()["tensorrt_version"]`` as (major, minor, patch): 8601 -> 8.6.1, 100800 -> 10.8.0."""
    if code < 10000:
        return code // 1000, code // 100 % 10, code % 100
    return code // 10000, code // 100 % 100, code % 100


def trtexec_path(plugin_path: str | Path) -> Path:
    """Where vs-mlrt's wheel puts ``trtexec``: ``vsmlrt-cuda`` beside the plugin library."""
    name = "trtexec.exe" if sys.platform == "win32" else "trtexec"
    return Path(plugin_path).parent / "vsmlrt-cuda" / name


def input_name(model: Path) -> str:
    """The ONNX graph's first input name (what ``--shapes`` names)."""
    import onnx

    return str(onnx.load(str(model), load_external_data=False).graph.input[0].name)


def build_command(
    trtexec: Path, model: Path, engine: Path, *, name: str, channels: int, width: int, height: int, fp16_flag: bool
) -> list[str]:
    """The ``trtexec`` command line for a static-shape engine of ``model``."""
    command = [
        str(trtexec),
        f"--onnx={model}",
        f"--saveEngine={engine}",
        f"--timingCacheFile={engine}.cache",
        f"--shapes={name}:1x{channels}x{height}x{width}",
    ]
    return [*command, "--fp16"] if fp16_flag else command


def engine_for(
    model: str, *, plugin_path: str, version_code: int, gpu: str, width: int, height: int
) -> tuple[Path, bool]:
    """The engine for ``model`` at width x height, built once into the cache.

    Returns:
        The engine path and whether it takes fp16 input (TensorRT 11 and later).

    Raises:
        LookupError: no ``trtexec`` beside the plugin (the row is skipped).
        RuntimeError: the build failed (its last line of output named).
    """
    trtexec = trtexec_path(plugin_path)
    if not trtexec.is_file():
        raise LookupError(f"vs-mlrt trt needs its trtexec, not found at {trtexec} (pip install vapoursynth-mlrt-trt)")
    version = trt_version(version_code)
    source = open_model(Path(model))
    graph, fp16_io = onnx_file(source, fp16=version >= (11, 0, 0))
    tag = hashlib.sha256(f"{source.identity}|{gpu}|{version}".encode()).hexdigest()[:12]
    engine = cache_dir() / "bench" / "mlrt-trt" / f"{source.path.stem}-{width}x{height}-fp16-{tag}.engine"
    if engine.is_file() and engine.stat().st_size > 1024:
        return engine, fp16_io
    engine.parent.mkdir(parents=True, exist_ok=True)
    command = build_command(
        trtexec, graph, engine, name=input_name(graph), channels=source.descriptor.in_channels,
        width=width, height=height, fp16_flag=version < (11, 0, 0),
    )  # fmt: skip
    print(f"paragon bench: building vs-mlrt's TensorRT engine {engine.name}", file=sys.stderr, flush=True)
    done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False)
    if done.returncode != 0 or not engine.is_file():
        tail = (done.stdout + done.stderr).strip().splitlines()
        raise RuntimeError(f"trtexec failed (exit {done.returncode}): {tail[-1] if tail else 'no output'}")
    return engine, fp16_io
