"""Training losses: pixel, MS-SSIM, frequency, anti-ringing, output range, perceptual (local VGG-19 weights),
adversarial.

All take ``(B, 3, H, W)`` tensors in [0, 1] and return a scalar.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from vsparagon.errors import ConfigError
from vsparagon.models.hermes.losses import anti_ringing_loss

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Smooth L1: ``mean(sqrt((pred - target)^2 + eps^2))``."""
    return torch.sqrt((pred - target) ** 2 + eps * eps).mean()


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error."""
    return (pred - target).abs().mean()


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error (PSNR is ``-10 log10`` of it)."""
    return ((pred - target) ** 2).mean()


def _gauss_window(size: int, sigma: float, channels: int, like: torch.Tensor) -> torch.Tensor:
    x = torch.arange(size, dtype=like.dtype, device=like.device) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size)


def _ssim_terms(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image mean SSIM and contrast-structure term (valid convolution, data range 1)."""
    c1, c2 = 0.01**2, 0.03**2
    groups = x.shape[1]
    mu_x, mu_y = F.conv2d(x, window, groups=groups), F.conv2d(y, window, groups=groups)
    sxx = F.conv2d(x * x, window, groups=groups) - mu_x**2
    syy = F.conv2d(y * y, window, groups=groups) - mu_y**2
    sxy = F.conv2d(x * y, window, groups=groups) - mu_x * mu_y
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    ssim = ((2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)) * cs
    return ssim.flatten(1).mean(1), cs.flatten(1).mean(1)


def ms_ssim(pred: torch.Tensor, target: torch.Tensor, *, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Multi-scale SSIM in [0, 1] (as many of the 5 standard scales as the crop allows).

    Training crops are small (128 px at x2 from 64 px LR), so the window shrinks with the
    coarser scales rather than dropping them.
    """
    pred, target = pred.float(), target.float()
    levels = max(1, min(len(MS_SSIM_WEIGHTS), int(torch.log2(torch.tensor(min(pred.shape[-2:]) / 4.0)).item()) + 1))
    weights = torch.tensor(MS_SSIM_WEIGHTS[:levels], device=pred.device)
    weights = weights / weights.sum()
    values = []
    for level in range(levels):
        size = min(window, min(pred.shape[-2:]))
        size -= 1 - size % 2  # odd
        ssim, cs = _ssim_terms(pred, target, _gauss_window(size, sigma, pred.shape[1], pred))
        values.append(torch.relu(ssim if level == levels - 1 else cs))
        if level < levels - 1:
            pred, target = F.avg_pool2d(pred, 2), F.avg_pool2d(target, 2)
    stacked = torch.stack(values, dim=1)  # (B, levels)
    return torch.prod(stacked**weights, dim=1).mean()


def fft_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between the 2-D spectra (real and imaginary parts, orthonormal scaling)."""
    diff = torch.fft.rfft2(pred.float(), norm="ortho") - torch.fft.rfft2(target.float(), norm="ortho")
    return torch.view_as_real(diff).abs().mean()


def anti_ringing(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """HERMES's anti-ringing term (``loss.anti_ringing``): how far ``pred`` leaves ``target``'s local range.

    Zero wherever the output stays within the HR picture's local extrema (so it does not blur edges);
    it grows with the halos of ringing. See :func:`vsparagon.models.hermes.losses.anti_ringing_loss`.
    """
    return anti_ringing_loss(pred.float(), target.float())


# --------------------------------------------------------------------------- output range
HARD_PATTERNS = ("binary noise", "uniform noise", "grain", "checkerboard", "lines", "flat")
"""The kinds :func:`hard_patterns` draws from, one per sample."""


def hard_patterns(n: int, channels: int, height: int, width: int, gen: torch.Generator) -> torch.Tensor:
    """``n`` LR inputs ``(n, channels, height, width)`` in [0, 1] of content that makes unbounded models overshoot.

    Each sample is one of :data:`HARD_PATTERNS`, drawn from ``gen``: binary noise of a random density,
    uniform noise, grain (sigma 0.05-0.5 around a random level, clipped), a checkerboard or lines of
    period 1 or 2 px, or a flat field; grey or in colour; blended towards a random level by a random
    contrast in [0.5, 1] (flat fields keep any level, 0 and 1 included).
    """

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=gen)

    out = torch.empty(n, channels, height, width)
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    for i in range(n):
        kind = HARD_PATTERNS[int(torch.randint(len(HARD_PATTERNS), (1,), generator=gen))]
        planes = channels if float(uniform(1)) < 0.5 else 1  # colour or grey
        if kind == "binary noise":
            x = (uniform(planes, height, width) < 0.2 + 0.6 * uniform(1)).float()
        elif kind == "uniform noise":
            x = uniform(planes, height, width)
        elif kind == "grain":
            level, sigma = 0.2 + 0.6 * uniform(1), 0.05 + 0.45 * uniform(1)
            x = (level + sigma * torch.randn((planes, height, width), generator=gen)).clamp(0, 1)
        elif kind in ("checkerboard", "lines"):
            period = 1 + int(torch.randint(2, (1,), generator=gen))
            axis = int(torch.randint(2, (1,), generator=gen))
            phase = (yy // period + xx // period) if kind == "checkerboard" else (yy, xx)[axis] // period
            a, b = uniform(planes, 1, 1), uniform(planes, 1, 1)
            x = torch.where((phase % 2).bool(), a, b).expand(planes, height, width)
        else:  # flat
            out[i] = uniform(planes, 1, 1).expand(channels, height, width)
            continue
        contrast, level = 0.5 + 0.5 * uniform(1), uniform(1)
        out[i] = (level + contrast * (x - level)).expand(channels, height, width)
    return out


def out_of_range(pred: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Mean squared excess of ``pred`` beyond ``[lo, hi]``: zero for output within it."""
    pred = pred.float()
    return (F.relu(pred - hi) ** 2 + F.relu(lo - pred) ** 2).mean()


# --------------------------------------------------------------------------- perceptual
#: VGG-19 ``features`` layout: channel counts, "M" = max-pool.
_VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


def _vgg_layer_names() -> dict[str, int]:
    """``"conv3_4" -> index`` of the ReLU after that conv in ``features``."""
    names, block, conv, index = {}, 1, 0, 0
    for entry in _VGG19:
        if entry == "M":
            block, conv, index = block + 1, 0, index + 1
            continue
        conv += 1
        names[f"conv{block}_{conv}"] = index + 1  # the ReLU right after the conv
        index += 2
    return names


class VGGFeatures(nn.Module):
    """VGG-19 feature extractor (frozen), weights from a local file in torchvision's key layout."""

    def __init__(self, weights_path: str | Path, layers: dict[str, float]) -> None:
        super().__init__()
        path = Path(weights_path)
        if not path.is_file():
            raise ConfigError(
                f"perceptual loss: weights file {path} not found. vsparagon never downloads weights: supply "
                "a VGG-19 state dict (torchvision layout, keys 'features.N.weight') as .pth or .safetensors, "
                "or set loss.perceptual.weight: 0"
            )
        known = _vgg_layer_names()
        unknown = sorted(set(layers) - set(known))
        if unknown:
            raise ConfigError(f"perceptual loss: unknown VGG layers {unknown}; valid: {sorted(known)}")
        modules: list[nn.Module] = []
        in_ch = 3
        for entry in _VGG19:
            if entry == "M":
                modules.append(nn.MaxPool2d(2))
            else:
                modules += [nn.Conv2d(in_ch, int(entry), 3, padding=1), nn.ReLU()]
                in_ch = int(entry)
        last = max(known[name] for name in layers)
        self.features = nn.Sequential(*modules[: last + 1])
        self.taps = {known[name]: weight for name, weight in layers.items()}
        self._load(path)
        self.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def _load(self, path: Path) -> None:
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path))
            else:
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ConfigError(f"perceptual loss: cannot read {path} ({str(exc).splitlines()[0]})") from None
        state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        wanted = self.features.state_dict()
        missing = sorted(set(wanted) - set(state), key=lambda k: int(k.split(".")[0]))
        if missing:
            raise ConfigError(f"perceptual loss: {path} is not a VGG-19 state dict (missing features.{missing[0]})")
        try:
            self.features.load_state_dict({k: state[k] for k in wanted})
        except RuntimeError as exc:
            raise ConfigError(f"perceptual loss: {path} does not fit VGG-19 ({str(exc).splitlines()[0]})") from None

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Weighted L1 between features of ``pred`` and ``target``."""
        mean, std = self.get_buffer("mean"), self.get_buffer("std")
        x = (torch.cat([pred, target]) - mean) / std
        loss = pred.new_zeros(())
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                a, b = x.chunk(2)
                loss = loss + self.taps[i] * (a - b.detach()).abs().mean()
        return loss


# --------------------------------------------------------------------------- adversarial
class PatchDiscriminator(nn.Module):
    """PatchGAN: a grid of real/fake logits, each over a ~70 px window."""

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        c = channels
        layers: list[nn.Module] = [nn.Conv2d(3, c, 4, 2, 1), nn.LeakyReLU(0.2)]
        for mult_in, mult_out, stride in ((1, 2, 2), (2, 4, 2), (4, 8, 1)):
            layers += [spectral_norm(nn.Conv2d(c * mult_in, c * mult_out, 4, stride, 1)), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(c * 8, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, 1, h, w)
        return self.net(x)


class UNetDiscriminator(nn.Module):
    """U-Net discriminator with spectral norm: one real/fake logit per pixel."""

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        c = channels

        def sn(cin: int, cout: int, k: int = 3, s: int = 1) -> nn.Module:
            return spectral_norm(nn.Conv2d(cin, cout, k, s, k // 2 if s == 1 else 1, bias=False))

        self.inp = nn.Conv2d(3, c, 3, 1, 1)
        self.down = nn.ModuleList([sn(c, 2 * c, 4, 2), sn(2 * c, 4 * c, 4, 2), sn(4 * c, 8 * c, 4, 2)])
        self.up = nn.ModuleList([sn(8 * c, 4 * c), sn(4 * c, 2 * c), sn(2 * c, c)])
        self.tail = nn.Sequential(sn(c, c), nn.LeakyReLU(0.2), sn(c, c), nn.LeakyReLU(0.2), nn.Conv2d(c, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, 1, H, W), H, W multiples of 8
        act = nn.functional.leaky_relu
        skips = [act(self.inp(x), 0.2)]
        for conv in self.down:
            skips.append(act(conv(skips[-1]), 0.2))
        y = skips.pop()
        for conv in self.up:
            y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
            y = act(conv(y), 0.2) + skips.pop()
        return self.tail(y)


def make_discriminator(kind: str, channels: int) -> nn.Module:
    """``patch`` or ``unet``."""
    return PatchDiscriminator(channels) if kind == "patch" else UNetDiscriminator(channels)


def gan_loss(logits: torch.Tensor, *, real: bool) -> torch.Tensor:
    """Binary cross-entropy on logits against all-real or all-fake."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


# --------------------------------------------------------------------------- auxiliary
def aux_losses(model: nn.Module) -> torch.Tensor | None:
    """Sum of the auxiliary losses a model's modules expose after a forward pass.

    A module opts in by setting a tensor attribute ``aux_loss`` in ``forward`` (for
    example a mixture-of-experts router's load-balancing term). None when no module does.
    """
    found: list[torch.Tensor] = [
        aux for m in model.modules() if isinstance(aux := getattr(m, "aux_loss", None), torch.Tensor)
    ]
    return torch.stack([t.float().sum() for t in found]).sum() if found else None
