"""The torch backend: shipped releases, the frame hook (tiling joined where the model runs), precision and devices.

Everything here runs real PyTorch on the CPU. Where CUDA is needed (device counting, bf16 support),
``torch.cuda``'s queries are replaced; the CUDA paths themselves run only in the ``gpu`` tests.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import randomize_
from torch import nn

from vsparagon import models
from vsparagon.catalogue.files import read_onnx
from vsparagon.errors import ConfigError
from vsparagon.runtime.backends import BackendError, Session
from vsparagon.runtime.backends.torch_backend import TorchBackend, TorchSession, checked_half, checkpoint_of
from vsparagon.runtime.policy import TilePlan, plan_frame
from vsparagon.runtime.source import open_model

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "paragonsr_tiny_x2.onnx"


class Blur(nn.Module):
    """A local model of receptive radius 2 (two 3x3 convs) followed by a nearest x2: crop is exact at overlap 2."""

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.a = nn.Conv2d(channels, 8, 3, padding=1)
        self.b = nn.Conv2d(8, channels, 3, padding=1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(torch.tanh(self.b(torch.tanh(self.a(x)))) + x, scale_factor=2)


def session_of(module: nn.Module, *, channels: int = 3) -> TorchSession:
    session = TorchSession(module.eval(), torch.device("cpu"), torch.float32, scale=2)
    session.channels = channels
    return session


def image(c: int, h: int, w: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((c, h, w), dtype=np.float32)


def into(session: Session, x: np.ndarray, plan: TilePlan, *, dtype=np.float32, planes: int = 3) -> np.ndarray:
    out = [np.full((x.shape[1] * 2, x.shape[2] * 2), np.nan, dtype) for _ in range(planes)]
    session.run_frame_into(x, plan, out)
    return np.stack(out).astype(np.float32)


def host(session: Session, x: np.ndarray, plan: TilePlan, **kw) -> np.ndarray:
    """The default hook (each tile through ``run`` on the host), on the same session."""
    out = [np.full((x.shape[1] * 2, x.shape[2] * 2), np.nan, kw.get("dtype", np.float32)) for _ in range(3)]
    Session.run_frame_into(session, x, plan, out)
    return np.stack(out).astype(np.float32)


WHOLE = TilePlan(tile_h=10_000, tile_w=10_000, overlap=0, join="crop")


def test_the_hook_on_the_whole_frame_is_the_model():
    session, x = session_of(Blur()), image(3, 20, 28)
    with torch.no_grad():
        direct = Blur()(torch.from_numpy(x)[None])[0].numpy()
    assert np.array_equal(into(session, x, WHOLE), direct)
    assert session.precision == "fp32"
    assert session.max_parallel == 1  # one lane on the CPU


@pytest.mark.parametrize(
    "plan",
    [
        TilePlan(tile_h=8, tile_w=12, overlap=2, join="crop"),
        TilePlan(tile_h=8, tile_w=8, overlap=3, join="crop", multiple_of=4),  # windows padded (edge replicate)
        TilePlan(tile_h=9, tile_w=10, overlap=6, join="blend"),
        TilePlan(tile_h=16, tile_w=7, overlap=5, join="blend", multiple_of=3),
    ],
)
def test_tiles_joined_by_the_hook_match_the_host_join(plan):
    session, x = session_of(Blur()), image(3, 21, 30)
    by_hook, by_host = into(session, x, plan), host(session, x, plan)
    assert np.isfinite(by_hook).all()
    assert np.abs(by_hook - by_host).max() < 1e-5


@pytest.mark.parametrize("join", ["crop", "blend"])
def test_tiled_equals_whole_frame_through_the_hook(join):
    session, x = session_of(Blur()), image(3, 24, 33)
    overlap = 2 if join == "crop" else 4  # crop: the radius; blend: twice it
    tiled = into(session, x, TilePlan(tile_h=8, tile_w=10, overlap=overlap, join=join))
    assert np.abs(tiled - into(session, x, WHOLE)).max() < 1e-5


def test_a_grey_model_runs_each_plane_through_the_hook():
    session, x = session_of(Blur(channels=1), channels=1), image(3, 16, 20)
    plan = TilePlan(tile_h=8, tile_w=8, overlap=2, join="crop")
    out = into(session, x, plan)
    with torch.no_grad():
        each = Blur(channels=1)(torch.from_numpy(x)[:, None])[:, 0].numpy()
    assert np.abs(out - each).max() < 1e-5


def test_half_float_planes_take_the_output_rounded_once():
    session, x = session_of(Blur()), image(3, 16, 24).astype(np.float16)
    plan = TilePlan(tile_h=8, tile_w=8, overlap=2, join="crop")
    half = into(session, x, plan, dtype=np.float16)
    full = into(session, x.astype(np.float32), WHOLE)
    assert np.array_equal(half, full.astype(np.float16).astype(np.float32))
    # the default hook (other sessions) writes float16 planes too
    assert np.array_equal(host(session, x, plan, dtype=np.float16), half)


def test_out_of_memory_names_the_fix():
    class Hungry(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    session = session_of(Hungry())
    with pytest.raises(BackendError, match=r"cpu ran out of memory on a 40x16 input \(fp32\): pass a smaller tile="):
        into(session, image(3, 16, 40), WHOLE)
    with pytest.raises(BackendError, match="num_streams=1"):
        session.run(image(3, 8, 8)[None])


def test_a_shipped_release_runs_from_the_checkpoint_beside_it():
    assert checkpoint_of(open_model(SHIPPED)) == SHIPPED.with_suffix(".safetensors")
    fp16 = open_model(SHIPPED.with_name("paragonsr_tiny_x2_fp16.onnx"))
    assert checkpoint_of(fp16) == SHIPPED.with_suffix(".safetensors")
    session = TorchBackend().open(open_model(SHIPPED))
    x = image(3, 12, 16)
    import onnxruntime as ort

    reference = ort.InferenceSession(str(SHIPPED), providers=["CPUExecutionProvider"])
    (expected,) = reference.run(None, {reference.get_inputs()[0].name: x[None]})
    assert np.abs(session.run(x[None]) - expected).max() < 1e-4


def test_an_onnx_file_without_its_checkpoint_is_refused(tmp_path, tiny_onnx):
    with pytest.raises(ConfigError, match=r"tiny_x2\.onnx has no tiny_x2\.safetensors beside it: .*backend='ort-cpu'"):
        TorchBackend().open(open_model(Path(tiny_onnx)))
    # a checkpoint beside it that is another model: refused, not run
    onnx = tmp_path / "paragonsr_tiny_x2.onnx"
    shutil.copy(SHIPPED, onnx)
    models.save(randomize_(models.create("tiny", scale=4)), tmp_path / "paragonsr_tiny_x2.safetensors")
    with pytest.raises(ConfigError, match=r"describes another model: paragonsr_tiny x4"):
        checkpoint_of(open_model(onnx))
    (tmp_path / "paragonsr_tiny_x2.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="is unreadable"):
        checkpoint_of(open_model(onnx))


class FakeCuda:
    """What ``torch.cuda`` answers about devices, for a machine with ``count`` GPUs of ``capability``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, count: int, capability: tuple[int, int] = (8, 9)) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")


def test_a_gpu_index_that_does_not_exist_names_how_many_do(monkeypatch):
    FakeCuda(monkeypatch, count=2)
    with pytest.raises(BackendError, match=r"device=2 does not exist: PyTorch sees 2 CUDA GPUs \(device=0 to 1\)"):
        TorchBackend(device=2)._device(torch)
    FakeCuda(monkeypatch, count=1)
    with pytest.raises(BackendError, match=r"sees 1 CUDA GPU \(device=0\)"):
        TorchBackend(device=1)._device(torch)
    assert TorchBackend(device=0)._device(torch) == torch.device("cuda:0")


def test_no_gpu_when_one_is_asked_for(monkeypatch):
    FakeCuda(monkeypatch, count=0)
    with pytest.raises(BackendError, match=r"device=1 asks for a GPU, and PyTorch sees no CUDA device"):
        TorchBackend(device=1)._device(torch)
    with pytest.raises(ConfigError, match=r"^fp16=True: backend='torch' runs half precision only on a CUDA GPU"):
        TorchBackend(fp16=True)._device(torch)
    with pytest.raises(ConfigError, match=r"^precision='bf16': backend='torch' runs half precision only"):
        TorchBackend(fp16=True, half="bf16")._device(torch)
    assert TorchBackend()._device(torch) == torch.device("cpu")


def test_bf16_needs_compute_capability_8(monkeypatch):
    FakeCuda(monkeypatch, count=1, capability=(7, 5))
    with pytest.raises(ConfigError, match=r"GPU 0 \(Fake GPU, compute capability 7\.5\) has no bfloat16"):
        TorchBackend(fp16=True, half="bf16")._device(torch)
    assert TorchBackend(fp16=True)._device(torch) == torch.device("cuda:0")  # fp16 runs there
    FakeCuda(monkeypatch, count=1, capability=(8, 0))
    assert TorchBackend(fp16=True, half="bf16")._device(torch) == torch.device("cuda:0")


def test_default_precision_is_fp16_on_a_gpu_for_fp16_safe_models(monkeypatch):
    descriptor = read_onnx(SHIPPED).descriptor
    assert descriptor is not None
    assert descriptor.fp16_safe
    unsafe = type(descriptor)(**{**descriptor.__dict__, "fp16_safe": False})
    FakeCuda(monkeypatch, count=1)
    assert TorchBackend.default_fp16(descriptor, bits=8) is True
    assert TorchBackend.default_fp16(descriptor, bits=None) is True
    assert TorchBackend.default_fp16(unsafe, bits=8) is False
    assert TorchBackend().on_gpu() is True
    FakeCuda(monkeypatch, count=0)
    assert TorchBackend.default_fp16(descriptor, bits=8) is False
    assert TorchBackend().on_gpu() is False


def test_fp16_that_overflows_falls_back_to_fp32_with_one_line(capsys):
    class Loud(nn.Module):
        """Fine in fp32; 7e4 is past fp16's largest value (65504), so fp16 gives inf."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = nn.functional.interpolate(x, scale_factor=2) * 7e4
            return y / 7e4

    module, dtype = checked_half(Loud(), torch.device("cpu"), model="loud.onnx", channels=3)
    assert dtype == torch.float32
    err = capsys.readouterr()
    assert err.out == ""
    assert err.err == (
        "vsparagon: torch runs loud.onnx in fp32, not fp16: its fp16 output on a test pattern is not finite (inf/NaN)\n"
    )
    module, dtype = checked_half(Blur(), torch.device("cpu"), model="blur.onnx", channels=3)
    assert dtype == torch.float16
    assert next(module.parameters()).dtype == torch.float16
    assert capsys.readouterr().err == ""


def test_the_plan_of_a_real_model_through_the_hook_equals_the_host_join():
    """tiny x2 with realistic random weights, planned as the plugin plans it (crop at its receptive radius)."""
    model = models.fuse(randomize_(models.create("tiny", scale=2), seed=2)).eval()
    session, x = session_of(model), image(3, 80, 150)
    descriptor = read_onnx(SHIPPED).descriptor
    assert descriptor is not None
    plan = plan_frame(descriptor, height=80, width=150, fp16=False, tile=64)
    assert not plan.whole(80, 150)
    assert plan.overlap == descriptor.receptive_radius
    assert np.abs(into(session, x, plan) - into(session, x, WHOLE)).max() < 1e-4


class FakeGraphs:
    """``torch.cuda.CUDAGraph`` and ``torch.cuda.graph`` for a lane on the CPU: capture runs the model once
    (as CUDA does while recording), replay counts; ``fail`` makes capture raise as an uncapturable op does."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, fail: bool = False) -> None:
        self.captures, self.replays = 0, 0
        fakes = self

        class Graph:
            def replay(self) -> None:
                fakes.replays += 1

        class Capture:
            def __init__(self, graph, stream=None, capture_error_mode="global") -> None:
                assert capture_error_mode == "thread_local"

            def __enter__(self) -> None:
                fakes.captures += 1

            def __exit__(self, *exc) -> None:
                if fail:
                    raise RuntimeError("operation not permitted when stream is capturing\nmore detail")

        monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
        monkeypatch.setattr(torch.cuda, "graph", Capture)


def cpu_lane_as_if_cuda():
    from vsparagon.runtime.backends.torch_backend import GRAPH_WARMUP, _Lane

    lane = _Lane(Blur().eval(), torch.device("cpu"), torch.float32, graphs=True)
    lane.cuda = True  # forward's CUDA branch (channels_last, graphs); no stream, no copies
    return lane, GRAPH_WARMUP


def test_a_graph_is_captured_per_shape_after_warm_up_and_replayed(monkeypatch):
    fakes = FakeGraphs(monkeypatch)
    lane, warmup = cpu_lane_as_if_cuda()
    x = torch.from_numpy(image(3, 12, 16))[None]
    with torch.inference_mode():
        eager = lane.model(x)
        for _ in range(warmup):
            assert torch.allclose(lane.forward(x), eager, atol=1e-5)
        assert (fakes.captures, fakes.replays) == (0, 0)
        for _ in range(3):
            assert torch.allclose(lane.forward(x), eager, atol=1e-5)
        assert (fakes.captures, fakes.replays) == (1, 3)
        other = torch.from_numpy(image(3, 8, 8))[None]  # another shape: its own warm-up, its own graph
        for _ in range(warmup + 1):
            lane.forward(other)
        assert (fakes.captures, fakes.replays) == (2, 4)


def test_a_failed_capture_runs_eagerly_and_says_so_once(monkeypatch, capsys):
    fakes = FakeGraphs(monkeypatch, fail=True)
    lane, warmup = cpu_lane_as_if_cuda()
    x = torch.from_numpy(image(3, 12, 16))[None]
    with torch.inference_mode():
        eager = lane.model(x)
        for _ in range(warmup + 4):
            assert torch.allclose(lane.forward(x), eager, atol=1e-5)
    assert (fakes.captures, fakes.replays) == (1, 0)
    err = capsys.readouterr()
    assert err.out == ""
    assert err.err == (
        "vsparagon: torch runs (1, 3, 12, 16) eagerly "
        "(CUDA graph capture failed: operation not permitted when stream is capturing)\n"
    )
