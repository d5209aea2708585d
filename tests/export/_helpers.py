"""Shared helpers for the export tests: small quantized zoo models, BN folded, alphas initialised."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

import calibration
import sdk
from sdk.quant import ActQuantizer, quant_layers

PAIRS = [(2, 4), (3, 3), (4, 4), (4, 6), (6, 4), (8, 8), (3, 5)]


def input_chw(name: str) -> tuple[int, int, int]:
    """A small input for zoo model ``name`` (the zoo has no width knob): its channels at 16x16 for models
    designed for <= 32x32, at 8x8 for ImageNet-sized ones (their 32x downsampling reaches 1x1 either way)."""
    _, c, h, w = sdk.models.default_input_shape(name)
    side = 8 if max(h, w) > 32 else 16
    return c, min(h, side), min(w, side)


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
    name: str,
    config_seed: int,
    *,
    calib_batches: int = 3,
    batch: int = 64,
    power_of_two: bool = False,
    target: str | None = None,
    pair: tuple[int, int] | None = None,
) -> tuple[nn.Module, torch.Tensor]:
    """(qmodel ready to export, example input) for zoo model ``name`` under a random mixed config (every
    layer at ``pair`` when given), quantized for ``target`` when given (``sdk.quantize(..., target=)``)."""
    torch.manual_seed(config_seed)
    c, h, w = input_chw(name)
    model = sdk.models.create(name, num_classes=10, in_channels=c).eval()
    randomize_bn(model, config_seed)
    cfg = (
        random_config(model, config_seed) if pair is None else sdk.MixedPrecisionConfig.uniform(model, *pair)
    )
    q = sdk.quantize(model, cfg, target=target).eval()
    q = calibration.fold_bn(q)
    g = torch.Generator().manual_seed(1000 + config_seed)
    with torch.no_grad():
        for _ in range(calib_batches):
            q(torch.randn(batch, c, h, w, generator=g))
        jitter_alphas(q, g)
        if power_of_two:
            calibration.round_scales_to_power_of_two_(q)
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


def inputs(name: str, n: int, seed: int = 7) -> np.ndarray:
    c, h, w = input_chw(name)
    return np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(np.float32)


def layer_names(q: nn.Module) -> list[str]:
    return [n for n, _ in quant_layers(q)]


def output_step(q: nn.Module) -> float:
    """The logits' quantization step (the last layer's out_quant scale)."""
    last = quant_layers(q)[-1][1]
    assert last.out_quant is not None
    return float(last.out_quant.scale().detach())


def float64_model(q: nn.Module) -> nn.Module:
    """The fake-quant model evaluated in float64: its export stand-ins (the same float32 scales and integer
    codes) with float64 arithmetic, within ~1e-16 of the exact arithmetic that is the spec (DESIGN §2)."""
    from export._standin import standin_model

    return standin_model(q).double()


@torch.no_grad()
def float64_model_codes(
    q: nn.Module, model64: nn.Module, x: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Codes at every quantizer of ``q`` (keyed by its ActQuantizer name) and the logits, from ``model64`` =
    ``float64_model(q)`` on the float32 batch ``x``."""
    from export._standin import _ActQuant

    codes: dict[str, np.ndarray] = {}
    hooks = []
    for name, m in q.named_modules():
        if not isinstance(m, ActQuantizer):
            continue
        standin = model64.get_submodule(
            name.removesuffix("_quant") if name.endswith((".act_quant", ".out_quant")) else name
        )
        if isinstance(standin, _ActQuant):

            def hook(mod: _ActQuant, inp: tuple[torch.Tensor, ...], name: str = name) -> None:
                y = torch.clamp(torch.round(inp[0] / mod.scale), float(mod.lo), float(mod.hi))
                codes[name] = y.to(torch.int32).numpy()

            hooks.append(standin.register_forward_pre_hook(hook))
    try:
        logits = model64(torch.from_numpy(x).double()).numpy()
    finally:
        for h in hooks:
            h.remove()
    return codes, logits


def run_ort(model: object, x: np.ndarray) -> np.ndarray:
    import onnx
    import onnxruntime as ort

    assert isinstance(model, onnx.ModelProto)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]
