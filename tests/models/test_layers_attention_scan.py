"""The shared window-attention and selective-scan layers: against brute-force references, any size, exported."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import onnx_session

from vsparagon.models.layers.selective_scan import SCAN_STEPS, ScanCore, SelectiveScan2d, chunked_scan
from vsparagon.models.layers.window_attention import ShiftedWindowAttention

# --- window attention --------------------------------------------------------------------------


def _reference_attention(m: ShiftedWindowAttention, x: torch.Tensor) -> torch.Tensor:
    """Pixel by pixel: each query attends to the real pixels of its window and shift region only."""
    _, c, h, w = x.shape
    win, s, heads = m.window, m.shift, m.heads
    hp, wp = -(-h // win) * win, -(-w // win) * win
    out = torch.zeros_like(x)
    table = m.bias_table.detach()
    qkv = torch.nn.functional.linear(x.permute(0, 2, 3, 1), m.qkv.weight, m.qkv.bias)  # (B, H, W, 3C)
    q, k, v = qkv.split(c, dim=-1)

    def rolled(r: int, size: int) -> int:  # where original row r sits after the roll by -s
        return (r - s) % size

    for i in range(h):
        for j in range(w):
            ri, rj = rolled(i, hp), rolled(j, wp)
            keys = [
                (a, b)
                for a in range(h)
                for b in range(w)
                if rolled(a, hp) // win == ri // win
                and rolled(b, wp) // win == rj // win
                and (rolled(a, hp) >= hp - s) == (ri >= hp - s)
                and (rolled(b, wp) >= wp - s) == (rj >= wp - s)
            ]
            for head in range(heads):
                sl = slice(head * c // heads, (head + 1) * c // heads)
                logits = []
                for a, b in keys:
                    da = ri % win - rolled(a, hp) % win + win - 1
                    db = rj % win - rolled(b, wp) % win + win - 1
                    bias = table[da * (2 * win - 1) + db, head]
                    logits.append((q[0, i, j, sl] * m.scale * k[0, a, b, sl]).sum() + bias)
                weights = torch.softmax(torch.stack(logits), 0)
                mixed = sum(wt * v[0, a, b, sl] for wt, (a, b) in zip(weights, keys, strict=True))
                out[0, sl, i, j] = mixed  # type: ignore[assignment]
    return torch.nn.functional.linear(out.permute(0, 2, 3, 1), m.proj.weight, m.proj.bias).permute(0, 3, 1, 2)


@pytest.mark.parametrize("shift", [False, True])
def test_window_attention_equals_a_pixel_by_pixel_reference_at_an_odd_size(shift):
    torch.manual_seed(0)
    m = ShiftedWindowAttention(8, heads=2, window=4, shift=shift).double()
    with torch.no_grad():
        m.bias_table.normal_(0, 0.5)
        x = torch.randn(1, 8, 7, 10, dtype=torch.float64)
        got = m(x)
        expected = _reference_attention(m, x)
    assert got.shape == x.shape
    assert (got - expected).abs().max() < 1e-10


def test_window_attention_output_does_not_depend_on_pixels_outside_its_window():
    torch.manual_seed(1)
    m = ShiftedWindowAttention(8, heads=2, window=4, shift=False)
    x = torch.randn(1, 8, 8, 8, requires_grad=True)
    m(x)[0, :, 1, 2].sum().backward()
    assert x.grad is not None
    reach = x.grad[0].abs().sum(0) > 0
    assert reach[:4, :4].all()
    assert not reach[4:].any()
    assert not reach[:, 4:].any()


@pytest.mark.parametrize("size", [(1, 1), (3, 2), (9, 17), (16, 16)])
def test_window_attention_keeps_any_shape(size):
    m = ShiftedWindowAttention(16, heads=4, window=8, shift=True)
    x = torch.randn(2, 16, *size)
    assert m(x).shape == x.shape
    assert torch.isfinite(m(x)).all()


def test_window_attention_exports_with_dynamic_sizes():
    torch.manual_seed(2)
    m = ShiftedWindowAttention(16, heads=2, window=4, shift=True).eval()
    session = onnx_session(m, torch.rand(1, 16, 8, 8))  # traced with no padding at all
    for shape in [(2, 16, 9, 11), (1, 16, 13, 7), (1, 16, 3, 2)]:
        x = torch.randn(*shape)
        (got,) = session.run(None, {"input": x.numpy()})
        with torch.no_grad():
            expected = m(x).numpy()
        assert got.shape == shape
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_window_attention_rejects_bad_settings():
    with pytest.raises(ValueError, match="heads=3 must be a positive divisor of dim=16"):
        ShiftedWindowAttention(16, heads=3, window=8, shift=False)
    with pytest.raises(ValueError, match="window=1"):
        ShiftedWindowAttention(16, heads=2, window=1, shift=True)


# --- selective scan ----------------------------------------------------------------------------


def _recurrence(u, decay, b, c):
    """The scan one token at a time: h = exp(decay) h + u b^T; y = h c."""
    batch, length, heads, width = u.shape
    h = torch.zeros(batch, heads, width, b.shape[-1], dtype=u.dtype)
    ys = []
    for t in range(length):
        h = decay[:, t, :, None, None].exp() * h + u[:, t, :, :, None] * b[:, t, None, None, :]
        ys.append((h * c[:, t, None, None, :]).sum(-1))
    return torch.stack(ys, 1)


@pytest.mark.parametrize("chunk", [1, 3, 16, 64])
def test_chunked_scan_equals_the_recurrence(chunk):
    gen = torch.Generator().manual_seed(3)
    shape = (2, 37, 3, 2)
    u = torch.randn(shape, generator=gen, dtype=torch.float64)
    decay = -3 * torch.rand(shape[:3], generator=gen, dtype=torch.float64)
    b, c = (torch.randn(2, 37, 4, generator=gen, dtype=torch.float64) for _ in range(2))
    got = chunked_scan(u, decay, b, c, chunk=chunk)
    assert (got - _recurrence(u, decay, b, c)).abs().max() < 1e-12


def test_chunked_scan_carries_state_across_many_chunks_without_overflow():
    """Strong decays over 1000 tokens: every weight stays <= 1, nothing overflows, still exact."""
    gen = torch.Generator().manual_seed(4)
    u = torch.randn(1, 1000, 1, 2, generator=gen, dtype=torch.float64)
    decay = -torch.rand(1, 1000, 1, generator=gen, dtype=torch.float64) * 20
    decay[:, ::7] = 0.0  # some steps keep everything: state travels far
    b, c = (torch.randn(1, 1000, 2, generator=gen, dtype=torch.float64) for _ in range(2))
    got = chunked_scan(u, decay, b, c, chunk=8)
    assert torch.isfinite(got).all()
    assert (got - _recurrence(u, decay, b, c)).abs().max() < 1e-10


def test_scan_core_is_causal():
    torch.manual_seed(5)
    core = ScanCore(8, state=4, chunk=4, heads=2)
    x = torch.randn(1, 23, 8, requires_grad=True)
    core(x)[0, 10].sum().backward()
    assert x.grad is not None
    reach = x.grad[0].abs().sum(1) > 0
    assert reach[:11].all()
    assert not reach[11:].any()


@pytest.mark.parametrize("directions", [2, 4])
def test_selective_scan_sees_the_whole_picture(directions):
    torch.manual_seed(6)
    m = SelectiveScan2d(8, directions=directions, chunk=4)
    x = torch.randn(1, 8, 9, 7, requires_grad=True)
    m(x)[0, :, 4, 3].sum().backward()
    assert x.grad is not None
    assert (x.grad[0].abs().sum(0) > 0).all()


@pytest.mark.parametrize("size", [(1, 1), (5, 3), (37, 53)])
def test_selective_scan_keeps_any_shape(size):
    m = SelectiveScan2d(16, state=4)
    x = torch.randn(2, 16, *size)
    assert m(x).shape == x.shape


def test_selective_scan_runs_its_recurrence_in_float32_under_bfloat16():
    torch.manual_seed(7)
    m = SelectiveScan2d(16, state=4)
    x = torch.randn(1, 16, 6, 9)
    with torch.no_grad():
        reference = m(x)
    seen: list[tuple[torch.dtype, torch.dtype]] = []
    for core in m.cores:
        core.register_forward_hook(lambda mod, inp, out: seen.append((inp[0].dtype, out.dtype)))
    low = m.to(torch.bfloat16)
    with torch.no_grad():
        out = low(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    assert seen == [(torch.float32, torch.float32)] * 2
    assert (out.float() - reference).abs().max() < 0.1 * float(reference.abs().max())


def test_selective_scan_exports_with_dynamic_sizes_and_all_scan_steps():
    """Traced on 16 tokens (one chunk, no cross-chunk step), run on 1961 (62 chunks, 6 steps)."""
    torch.manual_seed(8)
    m = SelectiveScan2d(16, state=4, directions=4).eval()
    session = onnx_session(m, torch.rand(1, 16, 4, 4))
    assert m.cores[0].chunk * 2**SCAN_STEPS > 1961
    for shape in [(1, 16, 37, 53), (2, 16, 3, 2)]:
        x = torch.randn(*shape)
        (got,) = session.run(None, {"input": x.numpy()})
        with torch.no_grad():
            expected = m(x).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_selective_scan_rejects_bad_settings():
    with pytest.raises(ValueError, match="directions=3 is not supported; use 2 or 4"):
        SelectiveScan2d(16, directions=3)
    with pytest.raises(ValueError, match="state=0"):
        SelectiveScan2d(16, state=0)
