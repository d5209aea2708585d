"""sdk.quantize: a new fake-quant module from a float model and a MixedPrecisionConfig."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from sdk.config import FLOAT_BITS, MixedPrecisionConfig, check_bits
from sdk.errors import ConfigError, InputError
from sdk.models.layers import Add
from sdk.quant.layers import quantizable_layers
from sdk.quant.modules import QuantAdd, QuantConv2d, QuantLinear
from sdk.quant.quantizers import ActQuantizer

__all__ = [
    "quantize",
    "quantize_residual_adds",
    "set_bits",
    "set_unsigned_act_bits",
    "target_unsigned_act_bits",
    "quant_layers",
    "is_quantized",
    "config_of",
]


def _set_child(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def quantize(
    model: nn.Module,
    config: MixedPrecisionConfig | Mapping[str, Any],
    *,
    per_channel: bool = True,
    residual_bits: int = 8,
    output_bits: int = 8,
    target: Any = None,
) -> nn.Module:
    """Return a new module whose Conv2d/Linear layers are fake-quantized per ``config`` (Eq. 1).

    The float ``model`` is left untouched. BatchNorm stays float (folding is calibration's job).
    ``residual_bits`` quantizes both operands of every ``sdk.models.layers.Add`` (32 disables), and
    ``output_bits`` quantizes the last layer's output (the logits; 32 disables) so integer engines
    keep every conv/linear on integer kernels. ``target`` (a target name) makes the model compute what that
    target runs: on "tensorrt"/"jetson" unsigned activations keep at most 7 bits of codes (0..127, what
    symmetric int8 holds), so an 8-bit activation after a ReLU has 128 levels there.
    """
    if not isinstance(model, nn.Module):
        raise InputError(f"sdk.quantize expects a float torch.nn.Module, got {type(model).__name__}.")
    if is_quantized(model):
        raise InputError("model is already quantized; pass the float model, or use sdk.quant.set_bits().")
    cfg = config if isinstance(config, MixedPrecisionConfig) else MixedPrecisionConfig(config)
    cfg.validate_for(model)
    for what, b in (("residual_bits", residual_bits), ("output_bits", output_bits)):
        check_bits((b, b), where=what)
    q = copy.deepcopy(model)
    layers = quantizable_layers(q)
    last = layers[-1][0]
    for name, m in layers:
        w, a = cfg[name]
        out = output_bits if name == last and output_bits < FLOAT_BITS else None
        cls = QuantConv2d if isinstance(m, nn.Conv2d) else QuantLinear
        _set_child(q, name, cls.from_float(m, w, a, per_channel=per_channel, out_bits=out))  # type: ignore[arg-type]
    quantize_residual_adds(q, residual_bits)
    if target is not None:
        set_unsigned_act_bits(q, target_unsigned_act_bits(target))
    return q


def target_unsigned_act_bits(target: Any) -> int:
    """The widest unsigned activation codes ``target`` (a name or a ``targets.Target``) runs exactly."""
    import targets

    t = targets.get(target) if isinstance(target, str) else target
    if not isinstance(t, targets.Target):
        raise InputError(f"target must be a target name such as 'tensorrt', got {target!r}.")
    return t.unsigned_act_bits


def set_unsigned_act_bits(model: nn.Module, bits: int) -> None:
    """Cap every activation quantizer of ``model`` at ``bits`` of unsigned codes, in place (a supernet too).

    Call before the quantizers see data: alpha's step then spans the capped code range.
    """
    for m in model.modules():
        if isinstance(m, ActQuantizer):
            m.set_unsigned_bits(bits)


def quantize_residual_adds(model: nn.Module, residual_bits: int) -> None:
    """Replace every ``sdk.models.layers.Add`` of ``model`` in place by ``QuantAdd(residual_bits)`` (both
    operands quantized); ``residual_bits`` >= 32 leaves them float. ``sdk.quantize`` and the search supernet
    share it, so the supernet trains under the residual quantization the deployed model runs."""
    if residual_bits >= FLOAT_BITS:
        return
    for name, m in list(model.named_modules()):
        if type(m) is Add:
            _set_child(model, name, QuantAdd(residual_bits))


def quant_layers(qmodel: nn.Module) -> list[tuple[str, QuantConv2d | QuantLinear]]:
    """(name, layer) of every quantized Conv2d/Linear, in model order."""
    return [(n, m) for n, m in qmodel.named_modules() if isinstance(m, (QuantConv2d, QuantLinear))]


def is_quantized(model: nn.Module) -> bool:
    return any(isinstance(m, (QuantConv2d, QuantLinear)) for m in model.modules())


@torch.no_grad()
def set_bits(qmodel: nn.Module, config: MixedPrecisionConfig | Mapping[str, Any]) -> None:
    """Change the bit widths of an already quantized model in place (names must match)."""
    cfg = config if isinstance(config, MixedPrecisionConfig) else MixedPrecisionConfig(config)
    layers = dict(quant_layers(qmodel))
    unknown = [n for n in cfg if n not in layers]
    if unknown:
        raise ConfigError(f"config names layers the quantized model does not have: {unknown[:5]}.")
    for name, (w, a) in cfg.items():
        layers[name].set_bits(w, a)


def config_of(qmodel: nn.Module) -> MixedPrecisionConfig:
    """The MixedPrecisionConfig a quantized model currently runs."""
    return MixedPrecisionConfig({n: m.bits for n, m in quant_layers(qmodel)})
