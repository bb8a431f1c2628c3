"""Mamba-style selective scan over an image, in pure PyTorch, exportable to ONNX at any size.

:class:`SelectiveScan2d` maps ``(B, C, H, W)`` to ``(B, C, H, W)``. It flattens the map into
sequences (row-major forward and backward for ``directions=2``; column-major forward and backward
too for ``directions=4``), runs an input-dependent linear recurrence along each, and merges them:

    h_t = exp(dt_t * A) * h_{t-1} + dt_t * x_t * B_t        (per channel, a state of size N)
    y_t = C_t . h_t + D * x_t

``dt`` and ``B``, ``C`` come from the token itself: that is what makes the scan *selective*. The
channels form heads of ``head_dim`` channels (Mamba-2's form): each head has one step size ``dt``
per token and one learned decay rate ``A < 0`` (scalar over the state), and ``B``, ``C`` are shared
by the heads. That lets the scan run in parallel without custom kernels and with every weight <= 1:

* the sequence is cut into chunks of :attr:`ScanCore.chunk` tokens (padded at its end);
* inside a chunk, the output is a masked, decay-weighted ``C B^T`` matrix (``T x T`` per head, quadratic
  in the chunk length only) times the inputs, with every decay factor ``exp(S_t - S_s) <= 1`` computed
  from differences of a cumulative sum, so nothing overflows, in float16 either;
* across chunks, the states are combined by a parallel (Hillis-Steele) prefix scan of a fixed
  number of doubling steps (:data:`SCAN_STEPS`), so the traced graph does not depend on the size;
  it is exact for up to ``chunk * 2**SCAN_STEPS`` tokens.

The scan runs in float32 explicitly (inputs are cast with ``.float()``, the result cast back to the
input dtype), whatever the dtype of the surrounding network.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: Doubling steps of the cross-chunk prefix scan: exact for up to ``chunk * 2**SCAN_STEPS`` tokens
#: per sequence (16.7 million with the default chunk of 16).
SCAN_STEPS = 20
#: Log weight of a future token inside a chunk: exp() of it is exactly 0 in float32 and float16, and
#: unlike -inf it fits in a float16 graph's constants.
FUTURE_LOG_WEIGHT = -1.0e4


def _shift_down(x: torch.Tensor, offset: int) -> torch.Tensor:
    """``x`` moved ``offset`` places along dim 1, zeros in front; the length stays that of ``x``.

    Built from two slices so that the result has ``x``'s length whether or not ``offset`` exceeds
    it, in eager PyTorch and in an exported graph alike (no size is read).
    """
    return torch.cat([torch.zeros_like(x[:, :offset]), x[:, :-offset]], dim=1)


def chunked_scan(u: torch.Tensor, decay: torch.Tensor, b: torch.Tensor, c: torch.Tensor, *, chunk: int) -> torch.Tensor:
    """``y_t = sum_{s<=t} exp(sum_{s<j<=t} decay_j) (C_t . B_s) u_s``, per head.

    Args:
        u: ``(B, L, H, P)`` inputs of the recurrence (``dt * x``), ``H`` heads of ``P`` channels.
        decay: ``(B, L, H)`` log decay per step and head (``dt * A``, <= 0).
        b: ``(B, L, N)`` input projections (shared by the heads).
        c: ``(B, L, N)`` output projections.
        chunk: tokens per chunk.

    Returns:
        ``(B, L, H, P)``, in the dtype of the inputs.
    """
    batch, length, heads, width = u.shape
    pad = (chunk - length % chunk) % chunk
    # Padding goes at the end, with zero input and zero decay: it changes no real output.
    u = F.pad(u, (0, 0, 0, 0, 0, pad)).reshape(batch, -1, chunk, heads, width)
    decay, b, c = (F.pad(t, (0, 0, 0, pad)) for t in (decay, b, c))
    decay = decay.reshape(batch, -1, chunk, heads)
    b, c = b.reshape(batch, -1, chunk, b.shape[-1]), c.reshape(batch, -1, chunk, c.shape[-1])
    cum = torch.cumsum(decay, dim=2).transpose(2, 3)  # (B, nc, H, T): S_t inside each chunk

    # Inside each chunk: weights exp(S_t - S_s) <= 1 for s <= t, exactly 0 above the diagonal.
    diff = cum[..., :, None] - cum[..., None, :]  # (B, nc, H, T, T)
    future = torch.ones(chunk, chunk, dtype=torch.bool, device=u.device).triu(1)
    mixing = (c @ b.transpose(-1, -2))[:, :, None] * diff.masked_fill(future, FUTURE_LOG_WEIGHT).exp()
    y = mixing @ u.transpose(2, 3)  # (B, nc, H, T, P)

    # Each chunk's own final state, and its total decay.
    to_end = (cum[..., -1:] - cum).exp()  # (B, nc, H, T)
    state = torch.einsum("bcht,bcthp,bctn->bchpn", to_end, u, b)  # (B, nc, H, P, N)
    total = cum[..., -1]  # (B, nc, H)
    # Inclusive prefix scan over chunks of (total, state) with (g1, s1) then (g2, s2) -> (g1 + g2, e^g2 s1 + s2).
    for step in range(SCAN_STEPS):
        offset = 1 << step
        if not torch.jit.is_tracing() and offset >= state.shape[1]:
            break  # the remaining steps would add zeros; a traced graph keeps them all
        state = state + total.exp()[..., None, None] * _shift_down(state, offset)
        total = total + _shift_down(total, offset)
    entering = _shift_down(state, 1)  # (B, nc, H, P, N): the state before each chunk's first token
    y = y + cum.exp()[..., None] * torch.einsum("bctn,bchpn->bchtp", c, entering)
    return y.transpose(2, 3).reshape(batch, -1, heads, width)[:, :length]


class ScanCore(nn.Module):
    """The recurrence along one set of sequences, in float32: its own module so tests can watch its dtype.

    The ``dim`` channels form ``heads`` heads; each head has its own step size ``dt`` per token and
    its own decay rate ``A`` (Mamba-2's form), which keeps the chunk weights small (``T x T`` per head).
    """

    def __init__(self, dim: int, *, state: int, chunk: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads={heads} must divide the scan width {dim}")
        self.state, self.chunk, self.heads = state, chunk, heads
        self.project = nn.Linear(dim, heads + 2 * state)  # -> dt, B, C
        # dt starts in [1e-3, 1e-1] (softplus inverse), A in [1, 16]: Mamba's initial ranges.
        dt = torch.exp(torch.rand(heads) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        with torch.no_grad():
            self.project.bias[:heads].copy_(dt + torch.log(-torch.expm1(-dt)))
        self.a_log = nn.Parameter(torch.log(torch.linspace(1.0, 16.0, heads)))
        self.skip = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D) float32 -> (B, L, D) float32
        weight, bias = self.project.weight.float(), self.project.bias.float()
        dt, b, c = F.linear(x, weight, bias).split([self.heads, self.state, self.state], dim=-1)
        dt = F.softplus(dt)  # (B, L, H)
        decay = dt * -torch.exp(self.a_log.float())
        u = x.reshape(x.shape[0], x.shape[1], self.heads, -1) * dt[..., None]
        y = chunked_scan(u, decay, b, c, chunk=self.chunk).flatten(2)
        return y + self.skip.float() * x


class SelectiveScan2d(nn.Module):
    """Global context along scan lines: a gated, selective state-space mixer of a feature map.

    ``in 1x1 -> (x, z)``; ``x -> depthwise 3x3 -> SiLU -> scans (one core per direction, summed)
    -> LayerNorm``; ``* SiLU(z) -> out 1x1``. Returns the mixer's output only (no residual).

    Args:
        dim: channels of the input and output.
        state: state size N of each channel's recurrence.
        expand: inner width relative to ``dim``.
        directions: 2 (row-major, both ways) or 4 (row- and column-major, both ways).
        chunk: tokens per chunk of the parallel scan (a speed/memory trade-off; the result is the same).
        head_dim: channels per head (each head has its own step size and decay); must divide ``dim * expand``.
    """

    def __init__(
        self, dim: int, *, state: int = 8, expand: int = 1, directions: int = 2, chunk: int = 32, head_dim: int = 16
    ) -> None:
        super().__init__()
        if directions not in (2, 4):
            raise ValueError(f"directions={directions} is not supported; use 2 or 4")
        if state < 1 or expand < 1 or chunk < 1:
            raise ValueError(f"state={state}, expand={expand} and chunk={chunk} must all be >= 1")
        inner = dim * expand
        heads = max(h for h in range(1, max(1, inner // head_dim) + 1) if inner % h == 0)
        self.directions = directions
        self.inner = nn.Conv2d(dim, 2 * inner, 1)
        self.local = nn.Conv2d(inner, inner, 3, padding=1, groups=inner)
        self.cores = nn.ModuleList(ScanCore(inner, state=state, chunk=chunk, heads=heads) for _ in range(directions))
        self.norm = nn.LayerNorm(inner)
        self.out = nn.Conv2d(inner, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        height, width = x.shape[2], x.shape[3]
        h, z = self.inner(x).chunk(2, dim=1)
        h = F.silu(self.local(h)).float()  # the scan runs in float32 (see the module docstring)
        rows = h.flatten(2).transpose(1, 2)  # (B, H*W, E) row-major
        y = self.cores[0](rows) + self.cores[1](rows.flip(1)).flip(1)
        if self.directions == 4:
            cols = h.transpose(2, 3).flatten(2).transpose(1, 2)  # (B, W*H, E) column-major
            y_cols = self.cores[2](cols) + self.cores[3](cols.flip(1)).flip(1)
            y = y + y_cols.transpose(1, 2).reshape(-1, y.shape[2], width, height).transpose(2, 3).flatten(2).transpose(
                1, 2
            )
        y = F.layer_norm(y, self.norm.normalized_shape, self.norm.weight.float(), self.norm.bias.float(), self.norm.eps)
        y = y.to(x.dtype)  # back to the network's dtype
        y = y.transpose(1, 2).reshape(-1, y.shape[2], height, width)
        return self.out(y * F.silu(z))


__all__ = ["FUTURE_LOG_WEIGHT", "SCAN_STEPS", "ScanCore", "SelectiveScan2d", "chunked_scan"]
