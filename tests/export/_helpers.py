"""Shared helpers for the export tests: small quantized zoo models, BN folded, alphas initialised."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

import sdk
from sdk.quant import ActQuantizer, QuantConv2d, WeightQuantizer, quant_layers

PAIRS = [(2, 4), (3, 3), (4, 4), (4, 6), (6, 4), (8, 8), (3, 5)]

# model -> input (C, H, W) small enough for a fast test; the zoo has no width knob for most models
INPUTS = {
    "digits_cnn": (1, 8, 8),
    "resnet20": (3, 16, 16),
    "resnet18": (3, 16, 16),
    "resnet50": (3, 16, 16),
    "mobilenet_v2": (3, 16, 16),
}


def fold_bn_for_tests(qmodel: nn.Module) -> nn.Module:
    """DESIGN §2 BN folding (a test-only stand-in until calibration.fold_bn lands): BN -> Identity."""
    try:
        from calibration import fold_bn  # type: ignore[attr-defined]

        return fold_bn(qmodel)  # type: ignore[no-any-return]
    except ImportError:
        pass
    prev: tuple[nn.Module, str, nn.Module] | None = None
    for parent in qmodel.modules():
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm2d) and prev is not None and isinstance(prev[2], QuantConv2d):
                conv = prev[2]
                with torch.no_grad():
                    mult = child.weight / torch.sqrt(child.running_var + child.eps)
                    conv.weight.mul_(mult.reshape(-1, 1, 1, 1))
                    bias = conv.bias if conv.bias is not None else torch.zeros_like(child.running_mean)
                    new_bias = (bias - child.running_mean) * mult + child.bias
                    if conv.bias is None:
                        conv.bias = nn.Parameter(new_bias)
                    else:
                        conv.bias.copy_(new_bias)
                    conv.weight_quant.alpha.mul_(mult.abs())
                setattr(parent, child_name, nn.Identity())
            prev = (parent, child_name, child)
    return qmodel


def random_config(model: nn.Module, seed: int) -> sdk.MixedPrecisionConfig:
    rng = random.Random(seed)
    cfg = sdk.MixedPrecisionConfig.uniform(model, 4, 4)
    for name in cfg:
        cfg[name] = rng.choice(PAIRS)
    return cfg


def randomize_bn(model: nn.Module, seed: int) -> None:
    """Non-trivial BN statistics so folding changes weights and biases (untrained zoo BNs are identities)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def quantized(
    name: str, config_seed: int, *, calib_batches: int = 3, batch: int = 64, power_of_two: bool = False
) -> tuple[nn.Module, torch.Tensor]:
    """(qmodel ready to export, example input) for zoo model ``name`` under a random mixed config."""
    torch.manual_seed(config_seed)
    c, h, w = INPUTS[name]
    model = sdk.models.create(name, num_classes=10, in_channels=c).eval()
    randomize_bn(model, config_seed)
    q = sdk.quantize(model, random_config(model, config_seed)).eval()
    q = fold_bn_for_tests(q)
    g = torch.Generator().manual_seed(1000 + config_seed)
    with torch.no_grad():
        for _ in range(calib_batches):
            q(torch.randn(batch, c, h, w, generator=g))
        jitter_alphas(q, g)
        if power_of_two:
            snap_power_of_two(q)
    return q, torch.randn(1, c, h, w, generator=g)


def jitter_alphas(q: nn.Module, g: torch.Generator) -> None:
    """Move every activation alpha off the value lattice.

    First-batch initialisation takes a quantile of the data, which for low-bit inputs is one of the few values
    a layer's output takes, so scales become rational multiples of each other and exact rounding ties are
    common; the result of a tie then depends on float summation order, where no two engines agree. Trained
    or calibrated alphas are arbitrary floats; a 0-5% random stretch gives the same here.
    """
    for m in q.modules():
        if isinstance(m, ActQuantizer):
            m.alpha.mul_(1 + 0.05 * torch.rand((), generator=g))


@torch.no_grad()
def snap_power_of_two(q: nn.Module) -> None:
    """Round every weight and activation scale to the nearest power of two (alpha = 2^k * levels).

    With power-of-two scales every quantize, dequantize and accumulation of the fake-quant model is exact in
    float32, so the spec has one answer and any engine that lowers it exactly must reproduce it bit for bit.
    """
    for m in q.modules():
        if isinstance(m, ActQuantizer):
            levels = m.range[1]
            s = m.alpha.abs().clamp_min(1e-8) / levels
            m.alpha.copy_(torch.exp2(torch.round(torch.log2(s))) * levels)
        elif isinstance(m, WeightQuantizer):
            s = m.alpha.abs().clamp_min(1e-8) / m.levels
            m.alpha.copy_(torch.exp2(torch.round(torch.log2(s))) * m.levels)


def inputs(name: str, n: int, seed: int = 7) -> np.ndarray:
    c, h, w = INPUTS[name]
    return np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(np.float32)


def layer_names(q: nn.Module) -> list[str]:
    return [n for n, _ in quant_layers(q)]
