"""From a fake-quant model to a first QDQ ONNX graph (torch side of the exporter).

Every bpnas quantizer is replaced by an export-time stand-in that calls a bpnas custom op; the ONNX exporter
translates those ops to exactly ``QuantizeLinear -> Clip -> DequantizeLinear`` (activations) and
``DequantizeLinear`` of integer initializers (weights, biases). The stand-ins compute in torch exactly what
the fake-quant modules compute (DESIGN §2), which the tests check bit for bit, so the only thing left to
the ONNX passes is engine-specific re-encoding.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import onnx
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
    "trace",
]

_INT32_MAX = 2**31 - 1


# -- custom ops: the torch side computes the spec, the ONNX side emits standard QDQ ops ------------------
@torch.library.custom_op("bpnas::qcdq", mutates_args=())
def _qcdq(
    x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
) -> torch.Tensor:
    zp = zero_point.float()
    q = torch.clamp(torch.round(x / scale) + zp, lo.float(), hi.float())
    return (q - zp) * scale


@_qcdq.register_fake
def _(
    x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
) -> torch.Tensor:
    return torch.empty_like(x)


@torch.library.custom_op("bpnas::dequant", mutates_args=())
def _dequant(codes: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, axis: int) -> torch.Tensor:
    shape = [1] * codes.dim()
    if scale.dim() == 1:
        shape[axis] = -1
    return (codes.float() - zero_point.float().reshape(shape)) * scale.reshape(shape)


@_dequant.register_fake
def _(codes: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor, axis: int) -> torch.Tensor:
    return torch.empty(codes.shape, dtype=torch.float32, device=codes.device)


def _translations() -> dict:
    from onnxscript import opset18 as op

    def qcdq(x, scale, zero_point, lo, hi):  # type: ignore[no-untyped-def]
        q = op.QuantizeLinear(x, scale, zero_point)
        return op.DequantizeLinear(op.Clip(q, lo, hi), scale, zero_point)

    def dequant(codes, scale, zero_point, axis: int):  # type: ignore[no-untyped-def]
        return op.DequantizeLinear(codes, scale, zero_point, axis=axis)

    return {torch.ops.bpnas.qcdq.default: qcdq, torch.ops.bpnas.dequant.default: dequant}


# -- stand-ins ---------------------------------------------------------------------------------------------
class _ActQuant(nn.Module):
    """An ActQuantizer as ``bpnas::qcdq``: uint8 zero point 0 when unsigned, int8 zero point 0 when signed."""

    def __init__(self, q: ActQuantizer) -> None:
        super().__init__()
        lo, hi = q.range
        dtype = torch.int8 if q.signed else torch.uint8
        self.register_buffer("scale", q.scale().detach().float().reshape(()).clone())
        self.register_buffer("zero_point", torch.zeros((), dtype=dtype))
        self.register_buffer("lo", torch.tensor(lo, dtype=dtype))
        self.register_buffer("hi", torch.tensor(hi, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.bpnas.qcdq(x, self.scale, self.zero_point, self.lo, self.hi)


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

    def __init__(self, layer: QuantConv2d | QuantLinear) -> None:
        super().__init__()
        self.act = _act(layer.act_quant)
        self.out = _act(layer.out_quant)
        t = layer_tensors(layer)
        for name in ("weight", "weight_codes", "weight_scale", "bias", "bias_codes", "bias_scale"):
            value = getattr(t, name)
            if value is not None:
                self.register_buffer(name, value)
        if t.weight_scale is not None:
            self.register_buffer("weight_zero_point", torch.zeros(t.weight_scale.shape, dtype=torch.int8))
        if t.bias_scale is not None:
            self.register_buffer("bias_zero_point", torch.zeros(t.bias_scale.shape, dtype=torch.int32))

    def _weight(self) -> torch.Tensor:
        if hasattr(self, "weight_codes"):
            return torch.ops.bpnas.dequant(self.weight_codes, self.weight_scale, self.weight_zero_point, 0)
        return self.weight  # type: ignore[return-value]

    def _bias(self) -> torch.Tensor | None:
        if hasattr(self, "bias_codes"):
            return torch.ops.bpnas.dequant(self.bias_codes, self.bias_scale, self.bias_zero_point, 0)
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


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter prints progress and logs registry warnings; an SDK call should not."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lvl in zip(loggers, levels):
            lg.setLevel(lvl)


def trace(qmodel: nn.Module, example_input: torch.Tensor) -> onnx.ModelProto:
    """Export the stand-in model of ``qmodel`` with torch.onnx (opset 18, batch axis dynamic)."""
    if not isinstance(example_input, torch.Tensor) or example_input.dim() < 2:
        raise InputError("example_input must be a float tensor shaped like one batch, e.g. (1, 3, 32, 32).")
    model = standin_model(qmodel)
    x = example_input[:1].detach().float()
    x = torch.cat([x, x])  # batch 2: a batch of 1 would be specialised by torch.export
    with _quiet():
        program = torch.onnx.export(
            model,
            (x,),
            dynamo=True,
            input_names=["input"],
            output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim("N")},),
            custom_translation_table=_translations(),
            opset_version=18,
            optimize=True,
            verbose=False,
        )
    if program is None:  # pragma: no cover - dynamo=True always returns a program
        raise RuntimeError("torch.onnx.export returned no program")
    return program.model_proto
