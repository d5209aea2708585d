"""Distribution reshaping (BP-NAS Eq. 17-18): clamp weights to a few mean magnitudes so they quantize well.

Long-tailed weight distributions waste low-bit levels on rare outliers; clamping every conv/linear weight to
[-T, T] with T = k * mean(|W|) after each optimizer step keeps the float model quantization-friendly.
"""

from __future__ import annotations

import torch
from torch import nn

from sdk.errors import InputError

__all__ = ["reshape_weights_", "RESHAPE_K"]

RESHAPE_K = 2.0
_LAYERS = (nn.modules.conv._ConvNd, nn.Linear)


@torch.no_grad()
def reshape_weights_(model: nn.Module, k: float = RESHAPE_K) -> int:
    """Clamp, in place, each Conv/Linear weight to [-k * mean|W|, k * mean|W|]; returns the layers touched."""
    if not k > 0:
        raise InputError(f"reshape k must be > 0, got {k!r}; the paper uses k=2.")
    count = 0
    for m in model.modules():
        weight = getattr(m, "weight", None)
        if isinstance(m, _LAYERS) and isinstance(weight, torch.Tensor) and weight.numel():
            t = k * weight.abs().mean()
            weight.clamp_(-t, t)
            count += 1
    return count
