"""One pass of every GPU check, for a lent GPU machine with no network: run it once, read ``summary.txt``.

Meant for a machine with Python 3.12, a CUDA build of PyTorch and the CPU onnxruntime, but
no TensorRT, no VapourSynth and no network. Steps, each in its own process with a time limit
(the whole run stays under ``--budget`` seconds, 540 by default):

1. ``setup``: a virtual environment over the system's packages (``/tmp/vsparagon-gpu``) with
   what is missing installed from the local wheel folder WHEELS, if given (vapoursynth, onnx,
   safetensors, pytest and their dependencies: ``pip download`` them on a machine with a
   network); a ``paragon`` command beside its Python; a stand-in ``imageio_ffmpeg`` where none
   is installed (the test helpers import it; no GPU test decodes video);
2. ``facts``: the GPU, driver and CUDA version as vsparagon reads them, PyTorch's view, what
   ``backend="auto"`` picks;
3. ``tests``: the ``gpu``-marked tests (``pytest -m gpu`` on the files that have them);
4. ``e2e``: the shipped tiny x2 through ``core.paragon.Upscale(backend="torch")`` on CUDA:
   against ``ort-cpu`` on a small clip (fp16 tolerance), then 1080p -> 4K frames per second;
5. ``bench``: ``benchmarks/gpu_bench.py`` (tiny and s x2, 1080p, with the bare loop);
6. ``train``: a short training run on CUDA (``vsparagon.train`` on generated data; where its
   dependencies are missing, a plain PyTorch loop on the same model instead).

Every step writes ``<step>.log`` into OUT (``$OUT`` if set, else ``./gpu-check-out``); the
summary lists each step's exit status and time. The plugin's shim (``vsparagon/plugin/_lib``,
built, not tracked) must come along with the tree.

Usage::

    python3 benchmarks/gpu_device_check.py [WHEELS] [--budget 540]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = Path("/tmp/vsparagon-gpu")
STUBS = Path("/tmp/vsparagon-gpu-stubs")
SITE = Path("/tmp/vsparagon-gpu-site")
CACHE = Path("/tmp/vsparagon-gpu-cache")
#: What the tests and the plugin need beyond the machine's PyTorch, numpy and onnxruntime (import name: wheel).
NEEDED = {"vapoursynth": "vapoursynth", "onnx": "onnx", "safetensors": "safetensors", "pytest": "pytest"}
#: Seconds each step may take at most (the overall budget may cut them shorter).
LIMITS = {"setup": 90, "facts": 30, "tests": 180, "e2e": 60, "bench": 170, "train": 60}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("wheels", nargs="?", type=Path, help="folder of wheels to install what is missing from")
    parser.add_argument("--budget", type=float, default=540, help="seconds for the whole run (default 540)")
    parser.add_argument("--step", help=argparse.SUPPRESS)  # internal: run one Python step in this process
    args = parser.parse_args()
    if args.step:
        return run_step(args.step)
    out = Path(os.environ.get("OUT") or ROOT / "gpu-check-out")
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.budget
    summary: list[str] = []

    def run(name: str, command: list[str], env: dict[str, str] | None = None) -> int:
        limit = min(LIMITS[name], deadline - time.monotonic() - 5)
        if limit < 10:
            summary.append(f"{name}: not run (budget spent)")
            return -1
        start = time.monotonic()
        with (out / f"{name}.log").open("w") as log:
            try:
                code = subprocess.run(
                    command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env, timeout=limit, check=False
                ).returncode
            except subprocess.TimeoutExpired:
                code = 124
        summary.append(f"{name}: exit {code} in {time.monotonic() - start:.0f} s (limit {limit:.0f} s)")
        tail = (out / f"{name}.log").read_text(errors="replace").splitlines()[-25:]
        print(f"== {summary[-1]}", *tail, sep="\n", flush=True)
        return code

    python = setup(args.wheels, out, summary)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (ROOT, SITE, STUBS))), "PYTHONUNBUFFERED": "1"}
    env["VSPARAGON_CACHE"] = str(CACHE)  # not under OUT: exports and engines need not come back
    me = [python, str(Path(__file__).resolve())]
    run("facts", [*me, "--step", "facts"], env)
    marked = sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py") if "mark.gpu" in p.read_text()
    )
    run("tests", [python, "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider", *marked], env)
    run("e2e", [*me, "--step", "e2e"], env)
    bench = [python, str(ROOT / "benchmarks" / "gpu_bench.py"), "--frames", "30", "--warmup", "3", "--no-peers"]
    run("bench", [*bench, "--row-timeout", "60", "--json", str(out / "gpu_bench.json")], env)
    run("train", [*me, "--step", "train"], env)
    (out / "summary.txt").write_text("\n".join(summary) + "\n")
    print("\n".join(["", "summary:", *summary]))
    return 0


def setup(wheels: Path | None, out: Path, summary: list[str]) -> str:
    """The Python to run the steps with: a venv over the system's packages, completed from ``wheels``."""
    start = time.monotonic()
    log = [f"python {sys.version.split()[0]} at {sys.executable}"]
    python, target = sys.executable, []
    made = subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(VENV)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if made.returncode == 0 and _imports(str(VENV / "bin" / "python"), "torch"):
        python = str(VENV / "bin" / "python")
    else:  # no venv, or one that does not see this Python's packages (made from inside another venv)
        target = ["--target", str(SITE)]
        log.append(f"no usable venv (exit {made.returncode}); using {sys.executable}, installing into {SITE}")
    missing = [wheel for module, wheel in NEEDED.items() if not _imports(python, module)]
    log.append(f"missing before install: {missing or 'nothing'}")
    if missing and wheels is not None and wheels.is_dir():
        done = subprocess.run(
            [python, "-m", "pip", "install", "--no-index", "--find-links", str(wheels), *target, *missing],
            capture_output=True, text=True, check=False, timeout=LIMITS["setup"],
        )  # fmt: skip
        log += [f"pip install {' '.join(missing)}: exit {done.returncode}", *done.stdout.splitlines()[-5:]]
        log += done.stderr.splitlines()[-5:]
    elif missing:
        log.append(f"no wheel folder given (or {wheels} is not one): steps needing {missing} will fail")
    if not _imports(python, "imageio_ffmpeg"):
        (STUBS / "imageio_ffmpeg").mkdir(parents=True, exist_ok=True)
        (STUBS / "imageio_ffmpeg" / "__init__.py").write_text(
            '"""Stand-in: no ffmpeg on this machine (no GPU test decodes video)."""\n\n'
            "import shutil\n\n\ndef get_ffmpeg_exe():\n    return shutil.which('ffmpeg') or 'ffmpeg'\n"
        )
        log.append(f"imageio_ffmpeg: stand-in at {STUBS}")
    script = Path(python).with_name("paragon")  # where the tests look for the command
    if not script.exists() and os.access(script.parent, os.W_OK):
        script.write_text(f"#!{python}\nimport sys\nfrom vsparagon.cli.main import main\nsys.exit(main())\n")
        script.chmod(0o755)
    shim = ROOT / "vsparagon" / "plugin" / "_lib" / "libparagon.so"
    log.append(f"plugin shim {shim}: {'present' if shim.is_file() else 'MISSING (carry vsparagon/plugin/_lib)'}")
    log.append(f"still missing: {[w for m, w in NEEDED.items() if not _imports(python, m)] or 'nothing'}")
    (out / "setup.log").write_text("\n".join(log) + "\n")
    summary.append(f"setup: {time.monotonic() - start:.0f} s; " + log[-1])
    print("== setup", *log, sep="\n", flush=True)
    return python


def _imports(python: str, module: str) -> bool:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (SITE, STUBS)))}
    done = subprocess.run([python, "-c", f"import {module}"], capture_output=True, check=False, env=env)
    return done.returncode == 0


def run_step(name: str) -> int:
    """One Python step; the ones that need CUDA stop at once without it."""
    if name != "facts":
        import torch

        if not torch.cuda.is_available():
            print(f"{name}: PyTorch sees no CUDA device (torch {torch.__version__}, cuda {torch.version.cuda})")
            return 2
    return {"facts": step_facts, "e2e": step_e2e, "train": step_train}[name]()


def step_facts() -> int:
    """What vsparagon and PyTorch see, and what ``auto`` picks."""
    import torch

    from vsparagon.runtime import gpu_info
    from vsparagon.runtime.backends import BACKENDS
    from vsparagon.runtime.sessions import first_usable

    print(json.dumps(gpu_info.describe(gpu_info.gpu_report()), indent=2))
    print(f"torch {torch.__version__}, cuda {torch.version.cuda}, available {torch.cuda.is_available()}")
    if torch.cuda.is_available():
        print(f"torch device 0: {torch.cuda.get_device_name(0)}, capability {torch.cuda.get_device_capability(0)}")
    for name, cls in BACKENDS.items():
        print(f"{name}: {cls.unavailable() or 'available'}")
    onnx, release = first_usable(torch_runs_it=False), first_usable(torch_runs_it=True)
    print(f"auto: {release} for a checkpoint or shipped model, {onnx} for an ONNX file without a checkpoint")
    return 0


def step_e2e() -> int:
    """The shipped tiny x2 on backend='torch' (CUDA) through VapourSynth: correct, then fast."""
    import numpy as np
    import torch
    import vapoursynth as vs

    from vsparagon.plugin import upscale

    checkpoint = ROOT / "models" / "paragonsr_tiny_x2.safetensors"
    onnx = checkpoint.with_suffix(".onnx")
    rng = np.random.default_rng(0)
    patterns = rng.random((3, 144, 256), dtype=np.float32)
    blank = vs.core.std.BlankClip(width=256, height=144, format=vs.RGBS, length=2)

    def paint(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        frame = f.copy()
        for p in range(3):
            np.copyto(np.asarray(frame[p]), patterns[p])
        return frame

    small = blank.std.ModifyFrame(blank, paint)
    gpu = upscale(small, model=str(checkpoint), backend="torch").get_frame(0)
    cpu = upscale(small, model=str(onnx), backend="ort-cpu", fp16=False).get_frame(0)
    diff = max(float(np.abs(np.asarray(gpu[p]) - np.asarray(cpu[p])).max()) for p in range(3))
    props = {k: gpu.props.get(k) for k in ("ParagonBackend", "ParagonPrecision")}
    print(f"256x144 torch (CUDA) vs ort-cpu fp32: max |diff| {diff:.4g}; frame props {props}")
    big = vs.core.std.BlankClip(width=1920, height=1080, format=vs.RGBS, length=34, color=[0.3, 0.5, 0.7])
    clip = upscale(big, model=str(checkpoint), backend="torch")
    for n in range(4):
        clip.get_frame(n)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in clip[4:].frames():
        pass
    fps = 30 / (time.perf_counter() - start)
    print(f"1920x1080 -> {clip.width}x{clip.height} torch (CUDA) through clip.frames(): {fps:.1f} fps")
    print(f"torch peak allocated: {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB (this process's own tensors)")
    return 0 if diff < 0.02 else 1


def step_train() -> int:
    """A short training run on CUDA: vsparagon.train on generated data, else a plain loop on the same model."""
    import torch

    out = Path(os.environ.get("VSPARAGON_CACHE", "/tmp")) / "train-run"
    shutil.rmtree(out, ignore_errors=True)
    try:
        from vsparagon.train import train
        from vsparagon.train.config import parse_config
    except ImportError as exc:
        print(f"vsparagon.train cannot import here ({exc}); a plain PyTorch loop instead")
        return _plain_loop()
    config = {
        "model": {"variant": "tiny", "scale": 2},
        "data": {
            "train": [{"kind": "synthetic", "count": 64, "size": 128}],
            "val": [{"kind": "synthetic", "count": 2, "size": 64}],
            "crop": 64,
            "batch": 8,
            "workers": 0,
        },
        "optim": {"lr": 1e-3, "warmup": 5, "amp": "bf16"},
        "train": {"iters": 60, "val_every": 30, "save_every": 60, "log_every": 10, "device": "cuda"},
        "export": {"onnx": False},
    }
    start = time.perf_counter()
    result = train(parse_config(config), out)
    print(f"vsparagon.train: 60 steps on {torch.cuda.get_device_name(0)} in {time.perf_counter() - start:.1f} s")
    print(f"result: {result}")
    log = out / "log.jsonl"
    if log.is_file():
        print(*log.read_text().splitlines()[-4:], sep="\n")
    return 0


def _plain_loop() -> int:
    import torch

    from vsparagon import models

    torch.manual_seed(0)
    model = models.create("tiny", scale=2).cuda().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    target = torch.rand(8, 3, 128, 128, device="cuda")
    source = torch.nn.functional.interpolate(target, scale_factor=0.5, mode="area")
    losses = []
    start = time.perf_counter()
    for _ in range(100):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.l1_loss(model(source).float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    torch.cuda.synchronize()
    print(f"plain loop: 100 steps in {time.perf_counter() - start:.1f} s; L1 {losses[0]:.4f} -> {losses[-1]:.4f}")
    return 0 if losses[-1] < losses[0] else 1


if __name__ == "__main__":
    sys.exit(main())
