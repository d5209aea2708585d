"""What a quantized layer exports, and the model of what the exported graph computes (torch side).

:func:`layer_tensors` gives a conv/linear's integer codes and scales, which the QDQ emitter
(``export._fx_emit``) writes as initializers. :func:`standin_model` replaces every quantizer by a module that
computes in torch exactly what the emitted ``QuantizeLinear -> Clip -> DequantizeLinear`` and
``DequantizeLinear`` of integer initializers compute; in float64 it is the reference the parity tests measure
every artifact against (DESIGN §2).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sdk.config import FLOAT_BITS
from sdk.errors import InputError
from sdk.quant.modules import QuantConv2d, QuantLinear
from sdk.quant.quantizers import ActQuantizer

__all__ = [
    "LayerTensors",
    "check_ready",
    "fold_bn_if_needed",
    "layer_tensors",
    "standin_model",
]

_INT32_MAX = 2**31 - 1


# -- stand-ins ---------------------------------------------------------------------------------------------
def _qcdq(x: torch.Tensor, scale: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """QuantizeLinear -> Clip(lo, hi) -> DequantizeLinear at zero point 0, in ``x``'s float type."""
    return torch.clamp(torch.round(x / scale), lo.to(x.dtype), hi.to(x.dtype)) * scale


def _dequant(codes: torch.Tensor, scale: torch.Tensor, axis: int) -> torch.Tensor:
    """DequantizeLinear of integer codes at zero point 0 (per-channel along ``axis`` when scale is 1-D)."""
    shape = [1] * codes.dim()
    if scale.dim() == 1:
        shape[axis] = -1
    return codes.float() * scale.reshape(shape)


class _ActQuant(nn.Module):
    """An ActQuantizer as its QCDQ: uint8 zero point 0 when unsigned, int8 zero point 0 when signed."""

    scale: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor

    def __init__(self, q: ActQuantizer) -> None:
        super().__init__()
        lo, hi = q.range
        dtype = torch.int8 if q.signed else torch.uint8
        self.register_buffer("scale", q.scale().detach().float().reshape(()).clone())
        self.register_buffer("lo", torch.tensor(lo, dtype=dtype))
        self.register_buffer("hi", torch.tensor(hi, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _qcdq(x, self.scale, self.lo, self.hi)


def _act(q: ActQuantizer | None) -> nn.Module:
    return _ActQuant(q) if q is not None and q.bits < FLOAT_BITS else nn.Identity()


@dataclass(frozen=True)
class LayerTensors:
    """What a quantized conv/linear exports (DESIGN §4): integer codes and scales, or float tensors.

    ``weight_codes`` int8 with per-channel (C,) or scalar ``weight_scale``; ``bias_codes`` int32 with scale
    ``s_in * s_w`` when both sides are quantized, else a float ``bias`` (or none).
    """

    weight: torch.Tensor | None = None
    weight_codes: torch.Tensor | None = None
    weight_scale: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    bias_codes: torch.Tensor | None = None
    bias_scale: torch.Tensor | None = None


@torch.no_grad()
def layer_tensors(layer: QuantConv2d | QuantLinear) -> LayerTensors:
    w_bits, a_bits = layer.bits
    out: dict[str, torch.Tensor] = {}
    if w_bits < FLOAT_BITS:
        scale = layer.weight_quant.scale().detach().float()
        out["weight_codes"] = layer.weight_quant.codes(layer.weight).to(torch.int8)
        out["weight_scale"] = (scale.reshape(()) if scale.numel() == 1 else scale).clone()
    else:
        out["weight"] = layer.weight.detach().float().clone()
    bias = layer.bias
    if bias is not None and w_bits < FLOAT_BITS and a_bits < FLOAT_BITS:
        s = (layer.act_quant.scale() * layer.weight_quant.scale()).detach().float()
        s = s.reshape(()) if s.numel() == 1 else s
        codes = torch.round(bias.detach() / s).double().clamp(-_INT32_MAX, _INT32_MAX)
        out["bias_codes"] = codes.to(torch.int32)
        out["bias_scale"] = s.clone()
    elif bias is not None:
        out["bias"] = bias.detach().float().clone()
    return LayerTensors(**out)


class _Layer(nn.Module):
    """Common part of the conv/linear stand-ins: the layer's LayerTensors as buffers."""

    weight_codes: torch.Tensor
    weight_scale: torch.Tensor
    bias_codes: torch.Tensor
    bias_scale: torch.Tensor

    def __init__(self, layer: QuantConv2d | QuantLinear) -> None:
        super().__init__()
        self.act = _act(layer.act_quant)
        self.out = _act(layer.out_quant)
        t = layer_tensors(layer)
        for name in ("weight", "weight_codes", "weight_scale", "bias", "bias_codes", "bias_scale"):
            value = getattr(t, name)
            if value is not None:
                self.register_buffer(name, value)

    def _weight(self) -> torch.Tensor:
        if hasattr(self, "weight_codes"):
            return _dequant(self.weight_codes, self.weight_scale, 0)
        return self.weight  # type: ignore[return-value]

    def _bias(self) -> torch.Tensor | None:
        if hasattr(self, "bias_codes"):
            return _dequant(self.bias_codes, self.bias_scale, 0)
        return getattr(self, "bias", None)


class _Conv(_Layer):
    def __init__(self, layer: QuantConv2d) -> None:
        super().__init__(layer)
        self.stride, self.padding, self.dilation = layer.stride, layer.padding, layer.dilation
        self.groups, self.padding_mode = layer.groups, layer.padding_mode
        self._pad = layer._reversed_padding_repeated_twice

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(x)
        if self.padding_mode != "zeros":
            x = F.pad(x, self._pad, mode=self.padding_mode)
            y = F.conv2d(x, self._weight(), self._bias(), self.stride, 0, self.dilation, self.groups)
        else:
            y = F.conv2d(
                x, self._weight(), self._bias(), self.stride, self.padding, self.dilation, self.groups
            )
        return self.out(y)


class _Linear(_Layer):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(F.linear(self.act(x), self._weight(), self._bias()))


def _set_child(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def check_ready(qmodel: nn.Module) -> None:
    """Refuse models the exporter cannot lower exactly, with the fix."""
    layers = [n for n, m in qmodel.named_modules() if isinstance(m, (QuantConv2d, QuantLinear))]
    if not layers:
        raise InputError("export needs a quantized model: pass the model returned by sdk.quantize(...).")
    fresh = [
        n
        for n, m in qmodel.named_modules()
        if isinstance(m, ActQuantizer) and m.bits < FLOAT_BITS and not bool(m.initialized)
    ]
    if fresh:
        raise InputError(
            f"activation quantizers {fresh[:3]} have not seen data, so their scales are unset. "
            "Calibrate first: "
            "calibration.calibrate(qmodel, loader), or run a few batches through the model."
        )


def fold_bn_if_needed(qmodel: nn.Module) -> nn.Module:
    """The model with BatchNorm folded into the convs before it (calibration.fold_bn), DESIGN §2."""
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in qmodel.modules()):
        return qmodel
    try:
        from calibration import fold_bn  # type: ignore[attr-defined]
    except ImportError as e:
        raise InputError(
            "the model still has BatchNorm layers and calibration.fold_bn is not available; fold BN into the "
            "preceding convs before export."
        ) from e
    return fold_bn(qmodel)  # type: ignore[no-any-return]


def standin_model(qmodel: nn.Module) -> nn.Module:
    """A copy of ``qmodel`` (eval mode) with every quantized layer and quantizer replaced by its stand-in."""
    m = copy.deepcopy(qmodel).eval()
    for name, mod in list(m.named_modules()):
        if isinstance(mod, QuantConv2d):
            _set_child(m, name, _Conv(mod))
        elif isinstance(mod, QuantLinear):
            _set_child(m, name, _Linear(mod))
    for name, mod in list(m.named_modules()):
        if isinstance(mod, ActQuantizer):
            _set_child(m, name, _act(mod))
    return m.eval()
