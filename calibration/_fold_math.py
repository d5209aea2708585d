"""The BN-folding arithmetic shared by the plain and the QAT folds (DESIGN §2)."""

from __future__ import annotations

import torch
from torch import nn

from sdk.quant.quantizers import WeightQuantizer

__all__ = ["bn_scale", "fold_conv_bn_params", "rescale_weight_alpha_"]


def bn_scale(bn: nn.BatchNorm2d) -> torch.Tensor:
    """Per-channel ``g / sigma`` with ``sigma = sqrt(running_var + eps)`` (g = 1 when BN is not affine)."""
    if bn.running_var is None or bn.running_mean is None:
        raise ValueError(
            "BatchNorm2d without running statistics (track_running_stats=False) cannot be folded"
        )
    inv = torch.rsqrt(bn.running_var.double() + bn.eps)
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(inv)
    return gamma * inv


@torch.no_grad()
def fold_conv_bn_params(
    weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(W', b', g/sigma)`` with ``W' = W * g/sigma`` and ``b' = (b - mu) * g/sigma + beta``.

    Computed in float64 and cast back to the weight's dtype, so the fold adds no error beyond one rounding.
    """
    scale = bn_scale(bn)
    mu = bn.running_mean.double()  # type: ignore[union-attr]
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(mu)
    b = bias.double() if bias is not None else torch.zeros_like(mu)
    w = weight.double() * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    new_bias = (b - mu) * scale + beta
    return w.to(weight.dtype), new_bias.to(weight.dtype), scale.to(weight.dtype)


@torch.no_grad()
def rescale_weight_alpha_(
    quantizer: WeightQuantizer, scale: torch.Tensor, folded_weight: torch.Tensor
) -> None:
    """Move a weight clip into the folded domain: ``alpha * |g/sigma|`` per channel; per-tensor re-inits."""
    if quantizer.per_channel:
        quantizer.alpha.mul_(scale.abs().to(quantizer.alpha.dtype))
    else:
        quantizer.init_from(folded_weight)
