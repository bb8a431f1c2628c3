"""Reparameterizable convolution: several parallel branches while training, one conv after.

Every branch of :class:`RepConv2d` is linear in the input, so their sum is itself
one convolution whose kernel is the sum of the (zero-padded) branch kernels. That
is the whole trick; :meth:`RepConv2d.fused_kernel` computes it and
:meth:`RepConv2d.fuse` returns the plain ``nn.Conv2d`` that replaces the block.

In eval mode the block already runs the fused computation (one ``conv2d`` call),
so ``model.eval()`` gives inference speed without a separate fusion step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

KernelSize = tuple[int, int]


def _pair(size: int | KernelSize) -> KernelSize:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _pad_to(kernel: torch.Tensor, size: KernelSize) -> torch.Tensor:
    """Zero-pad a (O, I, kh, kw) kernel to ``size``, keeping it centred."""
    dh = (size[0] - kernel.shape[2]) // 2
    dw = (size[1] - kernel.shape[3]) // 2
    return F.pad(kernel, (dw, dw, dh, dh))


class Reparameterizable(nn.Module):
    """A block trained in one form and deployed in a cheaper, equal one.

    :func:`vsparagon.models.fusion.fuse` replaces every such block by what :meth:`fuse`
    returns; the result must compute the same function (each block has a fused == unfused test).
    """

    def fuse(self) -> nn.Module:
        """The inference form of this block (a new module; ``self`` is not changed)."""
        raise NotImplementedError(f"{type(self).__name__} does not define fuse()")


class RepConv2d(Reparameterizable):
    """A convolution trained as a sum of branches and deployed as one conv.

    Branches (all "same" padded, stride 1):

    * ``main``: the ``kernel_size`` convolution;
    * ``aux``: one smaller convolution per entry of ``aux_kernels``;
    * ``expand``: a bias-free 1x1 expansion to ``expand * out_channels`` channels
      followed by a ``kernel_size`` convolution (dense convs only); because the 1x1
      has no bias it commutes with zero padding, so the fusion is exact at the borders;
    * ``identity``: the input itself (needs ``in_channels == out_channels``).

    The sum is multiplied by an optional per-channel ``layer_scale``, which the
    fusion folds into the kernel and bias as well.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | KernelSize,
        *,
        groups: int = 1,
        aux_kernels: Sequence[int | KernelSize] = (),
        identity: bool = False,
        expand: int = 0,
        layer_scale: float | None = None,
    ) -> None:
        super().__init__()
        size = _pair(kernel_size)
        if size[0] % 2 == 0 or size[1] % 2 == 0:
            raise ValueError(f"RepConv2d needs odd kernel sizes, got {size}")
        aux_sizes = [_pair(k) for k in aux_kernels]
        for aux in aux_sizes:
            if aux[0] % 2 == 0 or aux[1] % 2 == 0 or aux[0] > size[0] or aux[1] > size[1]:
                raise ValueError(f"aux kernel {aux} must be odd and fit inside {size}")
        if identity and in_channels != out_channels:
            raise ValueError("an identity branch needs in_channels == out_channels")
        if expand and groups != 1:
            raise ValueError("the expand branch is only defined for dense (groups=1) convs")

        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = size
        self.groups = groups
        self.has_identity = identity

        def conv(cin: int, cout: int, k: KernelSize, bias: bool = True) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, k, padding=(k[0] // 2, k[1] // 2), groups=groups, bias=bias)

        self.main = conv(in_channels, out_channels, size)
        self.aux: list[nn.Conv2d] = nn.ModuleList(conv(in_channels, out_channels, k) for k in aux_sizes)  # type: ignore[assignment]
        self.expand_in: nn.Conv2d | None = None
        self.expand_out: nn.Conv2d | None = None
        if expand:
            mid = expand * out_channels
            self.expand_in = conv(in_channels, mid, (1, 1), bias=False)
            self.expand_out = conv(mid, out_channels, size)
        self.layer_scale: nn.Parameter | None = None
        if layer_scale is not None:
            self.layer_scale = nn.Parameter(torch.full((out_channels,), float(layer_scale)))
        self._cache_key: tuple[object, ...] | None = None
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def radius(self) -> KernelSize:
        """Receptive radius (rows, columns) of this conv in input pixels."""
        return (self.kernel_size[0] // 2, self.kernel_size[1] // 2)

    def _branches_forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.main(x)
        for conv in self.aux:
            y = y + conv(x)
        if self.expand_in is not None and self.expand_out is not None:
            y = y + self.expand_out(self.expand_in(x))
        if self.has_identity:
            y = y + x
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, Cin, H, W) -> (B, Cout, H, W)
        if not self.training:
            weight, bias = self._eval_parameters()
            return F.conv2d(x, weight, bias, padding=self.radius, groups=self.groups)
        y = self._branches_forward(x)
        if self.layer_scale is not None:
            y = y * self.layer_scale.view(1, -1, 1, 1)
        return y

    def _eval_parameters(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The fused kernel, cached until any parameter changes (optimizer step, load)."""
        if torch.is_grad_enabled():
            return self.fused_kernel()
        key = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in self.parameters())
        if self._cache is None or key != self._cache_key:
            with torch.no_grad():
                self._cache = self.fused_kernel()
            self._cache_key = key
        return self._cache

    def train(self, mode: bool = True) -> RepConv2d:
        self._cache, self._cache_key = None, None
        return super().train(mode)

    def fused_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(weight, bias)`` of the single conv equal to all branches.

        The sum is taken in float64 and cast back, so the fused conv matches the
        branch sum to the rounding of one convolution.
        """
        dtype = self.main.weight.dtype
        size = self.kernel_size
        weight = self.main.weight.double()
        bias = self._bias(self.main).double()
        for conv in self.aux:
            weight = weight + _pad_to(conv.weight.double(), size)
            bias = bias + self._bias(conv).double()
        if self.expand_in is not None and self.expand_out is not None:
            w1 = self.expand_in.weight.double()[:, :, 0, 0]  # (mid, Cin)
            w2 = self.expand_out.weight.double()  # (Cout, mid, kh, kw)
            weight = weight + torch.einsum("omhw,mi->oihw", w2, w1)
            bias = bias + self._bias(self.expand_out).double()
        if self.has_identity:
            weight = weight + self._identity_kernel(weight)
        if self.layer_scale is not None:
            scale = self.layer_scale.double()
            weight = weight * scale.view(-1, 1, 1, 1)
            bias = bias * scale
        return weight.to(dtype), bias.to(dtype)

    def _identity_kernel(self, like: torch.Tensor) -> torch.Tensor:
        """The kernel of the identity branch: 1 at the centre tap of each channel's own input."""
        eye = torch.zeros_like(like)
        index = torch.arange(self.out_channels, device=like.device)
        eye[index, index % (self.in_channels // self.groups), self.kernel_size[0] // 2, self.kernel_size[1] // 2] = 1.0
        return eye

    @staticmethod
    def _bias(conv: nn.Conv2d) -> torch.Tensor:
        if conv.bias is None:
            return torch.zeros(conv.out_channels, dtype=conv.weight.dtype, device=conv.weight.device)
        return conv.bias

    @torch.no_grad()
    def load_fused(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        """Set the branches so that they compute the given single conv (the inverse of :meth:`fuse`).

        The main branch takes the kernel (less the identity), every other branch starts at
        zero and the layer scale at 1, so ``fused_kernel()`` returns ``(weight, bias)`` again
        and training can go on from a fused (shipped) model. The extra branches learn from
        there: a zero conv still gets gradients.
        """
        expected = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        if tuple(weight.shape) != expected or tuple(bias.shape) != (self.out_channels,):
            raise ValueError(f"a fused kernel of shape {tuple(weight.shape)} does not fit {expected}")
        main = weight.double()
        if self.has_identity:
            main = main - self._identity_kernel(main)
        self.main.weight.copy_(main.to(self.main.weight.dtype))
        assert self.main.bias is not None  # every branch conv but expand_in has a bias
        self.main.bias.copy_(bias)
        for conv in [*self.aux, *([self.expand_out] if self.expand_out is not None else [])]:
            nn.init.zeros_(conv.weight)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        if self.layer_scale is not None:
            self.layer_scale.fill_(1.0)
        self._cache, self._cache_key = None, None

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        """Return the plain ``nn.Conv2d`` that computes exactly what the branches do."""
        weight, bias = self.fused_kernel()
        conv = nn.Conv2d(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            padding=self.radius,
            groups=self.groups,
            device=weight.device,
            dtype=weight.dtype,
        )
        conv.weight.copy_(weight)
        assert conv.bias is not None  # created with bias=True just above
        conv.bias.copy_(bias)
        conv.train(self.training)
        return conv
