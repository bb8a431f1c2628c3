"""HERMES's anti-ringing loss (seed 004, "FFT ringing" safeguard), a pure function of two pictures.

Ringing is overshoot: near an edge the output swings above the brightest or below the darkest
value the target has in that neighbourhood. The loss measures exactly that excess, so it is zero
for any output that stays within the target's local range (a blur, a sharp copy) and grows with
halos; it never pulls textures towards the mean as an L1 on high frequencies would.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def anti_ringing_loss(output: torch.Tensor, target: torch.Tensor, *, window: int = 5) -> torch.Tensor:
    """Mean amount by which ``output`` leaves the local ``[min, max]`` of ``target``.

    Args:
        output: ``(B, C, H, W)`` the network's picture.
        target: ``(B, C, H, W)`` the ground truth, same shape.
        window: odd side of the neighbourhood whose range is allowed (5 is about one ringing lobe at x2-x4).

    Returns:
        A scalar: ``mean(relu(output - local_max) + relu(local_min - output))``, unweighted
        (the training config sets its weight).

    Raises:
        ValueError: shapes differ or ``window`` is not a positive odd number.
    """
    if output.shape != target.shape:
        raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} must have the same shape")
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window={window} must be a positive odd number (the neighbourhood is centred)")
    pad = window // 2
    padded = F.pad(target, (pad, pad, pad, pad), mode="replicate")
    local_max = F.max_pool2d(padded, window, stride=1)
    local_min = -F.max_pool2d(-padded, window, stride=1)
    return (F.relu(output - local_max) + F.relu(local_min - output)).mean()


__all__ = ["anti_ringing_loss"]
