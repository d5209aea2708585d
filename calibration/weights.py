"""Weight clip calibration: each method maps a weight tensor to alpha (per output channel or per tensor)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from calibration.reshaping import reshape_alpha
from sdk._registry import Registry
from sdk.config import FLOAT_BITS
from sdk.quant.convert import quant_layers
from sdk.quant.quantizers import EPS, code_range

__all__ = ["WeightMethod", "WEIGHT_METHODS", "register_weight_method", "weight_alpha", "calibrate_weights_"]

WeightMethod = Callable[[torch.Tensor, int, bool], torch.Tensor]
"""``(weight, bits, per_channel) -> alpha`` of shape (C,) per channel or (1,) per tensor."""

WEIGHT_METHODS: Registry[WeightMethod] = Registry("weight calibration method")


def register_weight_method(name: str) -> Callable[[WeightMethod], WeightMethod]:
    """Decorator: register a weight clip rule under ``name``."""
    return WEIGHT_METHODS.decorator(name)


def _rows(weight: torch.Tensor, per_channel: bool) -> torch.Tensor:
    w = weight.detach().float()
    return w.flatten(1) if per_channel else w.reshape(1, -1)


@register_weight_method("minmax")
def minmax_alpha(weight: torch.Tensor, bits: int, per_channel: bool) -> torch.Tensor:
    """max|W| per channel: every weight representable, the default (as ``WeightQuantizer.init_from``)."""
    return _rows(weight, per_channel).abs().amax(1)


@register_weight_method("mse")
def mse_alpha(weight: torch.Tensor, bits: int, per_channel: bool, candidates: int = 100) -> torch.Tensor:
    """The clip among ``max|W| * j/candidates`` minimising each channel's squared quantization error."""
    rows = _rows(weight, per_channel)
    top = rows.abs().amax(1).clamp_min(EPS)
    n = code_range(bits, signed=True)[1]
    best_err = torch.full_like(top, float("inf"), dtype=torch.float64)
    best = top.clone()
    for j in range(1, candidates + 1):  # one candidate at a time: memory stays one weight tensor
        alpha = top * (j / candidates)
        s = (alpha / n)[:, None]
        err = (torch.clamp(torch.round(rows / s), -n, n) * s - rows).square().sum(1, dtype=torch.float64)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best = torch.where(better, alpha, best)
    return best


@register_weight_method("reshape")
def reshape_weight_alpha(weight: torch.Tensor, bits: int, per_channel: bool) -> torch.Tensor:
    """BP-NAS Eq. 17-18 as a clip: ``min(2 * mean|W|, max|W_c|)``."""
    return reshape_alpha(weight.float(), per_channel=per_channel)


def weight_alpha(weight: torch.Tensor, bits: int, per_channel: bool, method: str = "minmax") -> torch.Tensor:
    """alpha for ``weight`` by the registered ``method``; float (32-bit) weights always use minmax."""
    fn = WEIGHT_METHODS.get(method)
    return minmax_alpha(weight, bits, per_channel) if bits >= FLOAT_BITS else fn(weight, bits, per_channel)


@torch.no_grad()
def calibrate_weights_(qmodel: nn.Module, method: str = "minmax") -> None:
    """Set every quantized layer's weight alpha in place from its own weights."""
    WEIGHT_METHODS.resolve(method)
    for _, layer in quant_layers(qmodel):
        wq = layer.weight_quant
        alpha = weight_alpha(layer.weight, wq.bits, wq.per_channel, method)
        wq.alpha.copy_(alpha.clamp_min(EPS).to(wq.alpha.dtype).reshape(wq.alpha.shape))
