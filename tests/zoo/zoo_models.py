"""Small random-initialised models of spandrel's own architectures, saved as people share them.

No downloads: every checkpoint is built here from spandrel's classes, as a plain ``.pth`` state
dict, a ``.pth`` with ``params_ema`` (traiNNer-redux, neosr, BasicSR), or a ``.safetensors`` file.
(A module of its own, not ``conftest``: the tests import these names, and ``tests/conftest.py``
is also a module named ``conftest``.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from spandrel.architectures.Compact import Compact
from spandrel.architectures.ESRGAN import ESRGAN
from spandrel.architectures.PLKSR import RealPLKSR
from spandrel.architectures.RCAN import RCAN
from spandrel.architectures.SPAN import SPAN


@dataclass(frozen=True)
class Zoo:
    """The checkpoints, by the name the tests use."""

    folder: Path

    def __getitem__(self, name: str) -> Path:
        return next(self.folder.glob(f"{name}.*"))


#: name -> (module builder, how it is saved, what spandrel should report: id, scale, channels).
MODELS = {
    "compact": (
        lambda: Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2),
        "pth",
        ("Compact", 2, 3),
    ),
    "compact_grey": (
        lambda: Compact(num_in_ch=1, num_out_ch=1, num_feat=8, num_conv=2, upscale=2),
        "params_ema",
        ("Compact", 2, 1),
    ),
    "esrgan": (
        lambda: ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=2),
        "safetensors",
        ("ESRGAN", 2, 3),
    ),
    "span": (lambda: SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2), "params_ema", ("SPAN", 2, 3)),
    "plksr": (lambda: RealPLKSR(dim=8, n_blocks=2, upscaling_factor=2, kernel_size=7), "pth", ("PLKSR", 2, 3)),
    "rcan": (lambda: RCAN(scale=2, n_resgroups=1, n_resblocks=1, n_feats=8, reduction=4), "params_ema", ("RCAN", 2, 3)),
}
#: The convolutional ones: bounded reach, so join="crop" is exact.
CONVOLUTIONAL = ("compact", "compact_grey", "esrgan", "span")


def save_checkpoint(module: torch.nn.Module, folder: Path, name: str, how: str) -> Path:
    """Write ``module``'s weights as ``how``: ``pth`` (state dict), ``params_ema`` (wrapped) or ``safetensors``."""
    state = {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}
    if how == "safetensors":
        path = folder / f"{name}.safetensors"
        save_file(state, str(path))
    else:
        path = folder / f"{name}.pth"
        torch.save({"params_ema": state} if how == "params_ema" else state, path)
    return path


def build_zoo(folder: Path) -> Zoo:
    """Every model of :data:`MODELS`, seeded, saved into ``folder``."""
    for seed, (name, (build, how, _)) in enumerate(MODELS.items()):
        torch.manual_seed(seed)
        save_checkpoint(build().eval(), folder, name, how)
    return Zoo(folder)
