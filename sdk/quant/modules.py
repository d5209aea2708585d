"""Quantized layers: Conv2d/Linear with an input (activation) and a weight quantizer, and a quantized Add.

A layer's (w, a) pair means: weights at w bits, the layer's *input* activation at a bits, so that
BOPs = MACs * w * a (Eq. 3). Subclassing nn.Conv2d/nn.Linear keeps shape logic, BN folding and cost
counting working on quantized models unchanged.
"""

from __future__ import annotations

from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from sdk.config import FLOAT_BITS
from sdk.models.layers import Add
from sdk.quant.quantizers import ActQuantizer, WeightQuantizer, fake_quant

__all__ = ["QuantConv2d", "QuantLinear", "QuantAdd", "QuantLayer", "conv_like"]


C = TypeVar("C", bound=nn.Conv2d)


def conv_like(conv: nn.Conv2d, cls: type[C], *, bias: bool) -> C:
    """A new, uninitialised ``cls`` with the geometry, device and dtype of ``conv``."""
    return cls(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        dilation=conv.dilation,  # type: ignore[arg-type]
        groups=conv.groups,
        bias=bias,
        padding_mode=conv.padding_mode,
        device=conv.weight.device,
        dtype=conv.weight.dtype,
    )


class _QuantMixin:
    weight: torch.Tensor
    weight_quant: WeightQuantizer
    act_quant: ActQuantizer
    out_quant: ActQuantizer | None

    def _init_quant(self, w_bits: int, a_bits: int, per_channel: bool, out_bits: int | None) -> None:
        self.weight_quant = WeightQuantizer(w_bits, channels=self.weight.shape[0], per_channel=per_channel)
        self.weight_quant.init_from(self.weight)
        self.act_quant = ActQuantizer(a_bits)
        self.out_quant = ActQuantizer(out_bits, signed=True) if out_bits is not None else None

    @property
    def bits(self) -> tuple[int, int]:
        return self.weight_quant.bits, self.act_quant.bits

    def set_bits(self, w_bits: int, a_bits: int) -> None:
        self.weight_quant.bits = int(w_bits)
        self.act_quant.bits = int(a_bits)

    def quantized_weight(self) -> torch.Tensor:
        return self.weight_quant(self.weight)

    def quantized_bias(self) -> torch.Tensor | None:
        """Bias on the accumulator's int32 grid, scale ``s_in * s_w`` per channel, as integer engines add it.

        Call after ``act_quant`` has seen data (its scale is then initialised).
        """
        bias: torch.Tensor | None = getattr(self, "bias", None)
        if bias is None or self.weight_quant.bits >= FLOAT_BITS or self.act_quant.bits >= FLOAT_BITS:
            return bias
        s = self.act_quant.scale() * self.weight_quant.scale()
        return fake_quant(bias, s, -(2**31) + 1, 2**31 - 1)

    def _finish(self, y: torch.Tensor) -> torch.Tensor:
        return self.out_quant(y) if self.out_quant is not None else y


class QuantConv2d(_QuantMixin, nn.Conv2d):
    """Conv2d computing ``conv(Qa(x), Qw(W)) + bias`` (fake-quant, float arithmetic)."""

    @classmethod
    def from_float(
        cls,
        conv: nn.Conv2d,
        w_bits: int,
        a_bits: int,
        *,
        per_channel: bool = True,
        out_bits: int | None = None,
    ) -> QuantConv2d:
        q = conv_like(conv, cls, bias=conv.bias is not None)
        with torch.no_grad():
            q.weight.copy_(conv.weight)
            if conv.bias is not None:
                q.bias.copy_(conv.bias)  # type: ignore[union-attr]
        q._init_quant(w_bits, a_bits, per_channel, out_bits)
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act_quant(x)
        return self._finish(self._conv_forward(x, self.quantized_weight(), self.quantized_bias()))


class QuantLinear(_QuantMixin, nn.Linear):
    """Linear computing ``Qa(x) @ Qw(W).T + bias`` (fake-quant, float arithmetic)."""

    @classmethod
    def from_float(
        cls,
        lin: nn.Linear,
        w_bits: int,
        a_bits: int,
        *,
        per_channel: bool = True,
        out_bits: int | None = None,
    ) -> QuantLinear:
        q = cls(
            lin.in_features,
            lin.out_features,
            bias=lin.bias is not None,
            device=lin.weight.device,
            dtype=lin.weight.dtype,
        )
        with torch.no_grad():
            q.weight.copy_(lin.weight)
            if lin.bias is not None:
                q.bias.copy_(lin.bias)
        q._init_quant(w_bits, a_bits, per_channel, out_bits)
        return q

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act_quant(x)
        return self._finish(F.linear(x, self.quantized_weight(), self.quantized_bias()))


QuantLayer = QuantConv2d | QuantLinear


class QuantAdd(Add):
    """Residual addition whose two operands are quantized (signed, ``bits`` each) so integer engines can
    run the convolutions feeding it on integer kernels and add in the integer domain."""

    def __init__(self, bits: int = 8) -> None:
        super().__init__()
        self.quant_a = ActQuantizer(bits)
        self.quant_b = ActQuantizer(bits)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.quant_a(a) + self.quant_b(b)
