"""The symbolic values of the integer compiler: what a float tensor between two quantizers *is*.

The compiler never materializes such a tensor in float. It keeps it as one of these records (dequantized
codes, a conv/gemm accumulator with its per-channel scale, a sum of those, a clip, a pool, a flatten) and
lowers it only where a QuantizeLinear consumes it (:mod:`runtimes.integer.lower`). Records compare by
identity (``eq=False``) so they can key the compiler's memo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import onnx

__all__ = [
    "Acc",
    "Clip",
    "Codes",
    "Const",
    "Deq",
    "Flat",
    "FloatInput",
    "IntConst",
    "Pool",
    "Shape",
    "Sum",
    "attrs",
    "code_of",
    "frac",
]

Shape = tuple[int, ...]  # without the batch axis: (C, H, W) or (F,)


@dataclass(eq=False)
class FloatInput:
    """The network input, float until its QuantizeLinear."""

    shape: Shape


@dataclass(eq=False)
class Const:
    """A float initializer (scales, zero points, shapes)."""

    value: np.ndarray


@dataclass(eq=False)
class IntConst:
    """DequantizeLinear of an integer initializer: weight or bias codes with their scales."""

    codes: np.ndarray
    scale: np.ndarray
    axis: int


@dataclass(eq=False)
class Codes:
    """Integer codes in a register: value = code * scale, code in [lo, hi]."""

    reg: int
    scale: Fraction
    lo: int
    hi: int
    shape: Shape


@dataclass(eq=False)
class Deq:
    """DequantizeLinear of activation codes (its scale may differ from the quantizer's)."""

    codes: Codes
    scale: Fraction
    shape: Shape


@dataclass(eq=False)
class Acc:
    """A conv/gemm accumulator: value = reg * scales[c] + offset[c]."""

    reg: int
    scales: list[Fraction]
    bound: int
    shape: Shape
    offset: list[Fraction] | None = None  # what the int32 bias on the accumulator grid leaves out


@dataclass(eq=False)
class Sum:
    """An Add of two values between quantizers."""

    terms: tuple[Any, ...]
    shape: Shape


@dataclass(eq=False)
class Clip:
    """A float clip (Relu, Relu6, Clip) of a value, applied when it is lowered."""

    x: Any
    lo: float
    hi: float
    shape: Shape


@dataclass(eq=False)
class Pool:
    """Max or average pooling of a value, pending until it is lowered."""

    x: Any
    kind: str  # "max" | "avg"
    kernel: tuple[int, int] | None  # None: global
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]
    shape: Shape


@dataclass(eq=False)
class Flat:
    """A flatten of a value to (F,)."""

    x: Any
    shape: Shape


def frac(x: Any) -> Fraction:
    """The exact value of x rounded to float32."""
    return Fraction(float(np.float32(x)))


def attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def code_of(bound: float, s: Fraction) -> float:
    """The code a float clip bound maps to, ``round_half_even(fl32(bound) / s)`` exactly."""
    if math.isinf(bound):
        return bound
    return float(round(frac(bound) / s))
