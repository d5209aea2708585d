"""Distribution reshaping for PTQ (BP-NAS Eq. 17-18): clip weights to ``T = k * mean|W|``, k = 2.

Training-time reshaping lives in ``sdk.reshape`` (re-exported here). For PTQ the same clip needs no change to
the weights: a weight quantizer with ``alpha = T`` clamps to ``[-T, T]`` exactly as Eq. 17 does, which is the
``"reshape"`` weight calibration method.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from sdk.errors import InputError
from sdk.reshape import RESHAPE_K, reshape_weights_

__all__ = [
    "RESHAPE_K",
    "reshape_weights_",
    "reshape_threshold",
    "reshape_alpha",
    "reshaped",
    "clipped_fraction",
]

_LAYERS = (nn.Conv2d, nn.Linear)


def reshape_threshold(weight: torch.Tensor, k: float = RESHAPE_K) -> torch.Tensor:
    """Eq. 18: the layer-wise clip ``T = k * mean(|W|)`` (a 0-d tensor)."""
    if not k > 0:
        raise InputError(f"reshape k must be > 0, got {k!r}; the paper uses k=2.")
    return k * weight.detach().abs().mean()


def reshape_alpha(weight: torch.Tensor, *, per_channel: bool, k: float = RESHAPE_K) -> torch.Tensor:
    """Weight clip doing Eq. 17 at quantization time: ``min(T, max|W_c|)`` per output channel (or tensor).

    A channel whose largest weight is below ``T`` keeps its own maximum, so no quantization level is wasted.
    """
    t = reshape_threshold(weight, k)
    w = weight.detach().abs()
    top = w.flatten(1).amax(1) if per_channel else w.max().reshape(1)
    return torch.minimum(top, t)


@torch.no_grad()
def reshaped(model: nn.Module, k: float = RESHAPE_K) -> nn.Module:
    """A copy of ``model`` with every Conv/Linear weight clipped per Eq. 17-18 (``model`` is not modified)."""
    new = copy.deepcopy(model)
    reshape_weights_(new, k)
    return new


@torch.no_grad()
def clipped_fraction(model: nn.Module, k: float = RESHAPE_K) -> dict[str, float]:
    """Per Conv/Linear layer, the fraction of weights Eq. 17 would clip (~0 after training with reshaping)."""
    return {
        name: float((m.weight.abs() > reshape_threshold(m.weight, k)).float().mean())
        for name, m in model.named_modules()
        if isinstance(m, _LAYERS)
    }
