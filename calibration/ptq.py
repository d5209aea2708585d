"""Post-training quantization in one call: float model + MixedPrecisionConfig -> calibrated fake-quant."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from calibration.calibrate import calibrate
from calibration.observers import ObserverFactory
from sdk.config import MixedPrecisionConfig
from sdk.errors import InputError
from sdk.quant.convert import is_quantized, quantize

__all__ = ["ptq"]


def ptq(
    model: nn.Module,
    config: MixedPrecisionConfig | Mapping[str, Any],
    calib_loader: Iterable[Any],
    *,
    method: str | ObserverFactory = "percentile",
    weight_method: str = "minmax",
    num_batches: int | None = None,
    per_channel: bool = True,
    residual_bits: int = 8,
    output_bits: int = 8,
    power_of_two: bool = False,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> nn.Module:
    """Quantize ``model`` per ``config`` (sdk.quantize), fold BN, calibrate on ``calib_loader``; no training.

    ``model`` is not modified. Options are those of ``sdk.quantize`` and ``calibration.calibrate``.
    """
    if not isinstance(model, nn.Module):
        raise InputError(f"ptq needs a torch.nn.Module, got {type(model).__name__}.")
    if is_quantized(model):
        raise InputError(
            "ptq takes the float model; to calibrate an already quantized one use calibration.calibrate."
        )
    qmodel = quantize(
        model, config, per_channel=per_channel, residual_bits=residual_bits, output_bits=output_bits
    )
    return calibrate(
        qmodel,
        calib_loader,
        method=method,
        num_batches=num_batches,
        weight_method=weight_method,
        power_of_two=power_of_two,
        device=device,
        progress=progress,
    )
