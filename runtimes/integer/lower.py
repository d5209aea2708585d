"""Lowering a symbolic value (:mod:`runtimes.integer.values`) to integer codes, one table keyed by its type.

A value is lowered where a QuantizeLinear consumes it, straight to that quantizer's codes:

- conv/gemm accumulator [-> Relu/Clip] -> Q: one dyadic requantization; ReLU/ReLU6 become the code clamp
  (``round`` is monotone, so ``round(min(v, 6) / s) == min(round(v / s), round(6 / s))``).
- Add of dequantized codes [-> Relu] -> Q: a lookup table over every pair of operand codes, computed with
  exact rational rounding, when the pairs are few (<= 2^16); otherwise both operands' codes times dyadic
  multipliers to the consumer's scale, one rounding.
- MaxPool commutes with any per-channel monotone map, so it runs on the consumer's codes.
- Global/average pooling -> Q: the input is first put on a fine power-of-two grid (error below 2^-30 of the
  range, summed exactly in int32 range), then summed and divided by a dyadic multiplier.

:data:`RULES` says, per value type, how to bound it, requantize it, put it on a fine grid, split it into
linear terms and read it as a conv/gemm input; a type it does not list (or a None rule) is refused with a
BundleError naming the node.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from typing import Any

import numpy as np
import onnx

from runtimes.integer import dyadic as D
from runtimes.integer import kernels as K
from runtimes.integer.builder import Builder
from runtimes.integer.ops import clip_op, flatten_codes, rescale_op, table_op
from runtimes.integer.values import Acc, Clip, Codes, Deq, Flat, Pool, Sum, code_of, frac

__all__ = ["RULES", "Rule", "bound", "code_table", "codes_of", "fine", "lowerable", "requant", "rescale"]

FINE_SUM_BITS = 30  # pooled sums of fine-grid values stay below 2^31 (an int32 adder)
FINE_TERM_BITS = 28  # fine-grid operands of a sum leave room for >= 31-bit multipliers in int64
TABLE_LIMIT = 1 << 16  # largest code domain tabulated (two 8-bit operands)

Node = onnx.NodeProto
Terms = tuple[list[tuple[int, list[Fraction], int]], list[Fraction] | None]


@dataclass(frozen=True)
class Rule:
    """How one type of value lowers. ``terms`` None: put it on a fine grid to use it as a linear term;
    ``fine``/``codes`` None: it cannot be expressed that way."""

    bound: Callable[[Any], Fraction]
    requant: Callable[[Builder, Any, Fraction, int, int, str, Node], Codes]
    fine: Callable[[Builder, Any, Fraction, str, Node], tuple[int, int]] | None = None
    terms: Callable[[Builder, Any, Node], Terms] | None = None
    codes: Callable[[Builder, Any, Node], Codes] | None = None


def _name(v: Any) -> str:
    return type(v).__name__


def lowerable(v: Any) -> bool:
    """Whether v is a value between quantizers that lowers to integers."""
    return type(v) in RULES


def bound(v: Any) -> Fraction:
    """A rigorous bound on |v|."""
    return RULES[type(v)].bound(v)


def requant(c: Builder, v: Any, s: Fraction, lo: int, hi: int, name: str, node: Node) -> Codes:
    """Emit ``clamp(round(v / s), lo, hi)``: the codes of quantizer ``name``; memoized per value."""
    key = ("q", v, s, lo, hi)
    if key not in c.memo:
        rule = RULES.get(type(v))
        if rule is None:
            raise c.fail(node, f"its input is {_name(v)}, not an integer-expressible value.")
        c.memo[key] = rule.requant(c, v, s, lo, hi, name, node)
    return c.memo[key]  # type: ignore[no-any-return]


def fine(c: Builder, v: Any, g: Fraction, node: Node) -> tuple[int, int]:
    """Emit round(v / g) on the fine grid g (exact integers in float64/int64), and max |result|."""
    key = ("f", v, g)
    if key not in c.memo:
        rule = RULES.get(type(v))
        if rule is None or rule.fine is None:
            raise c.fail(node, f"cannot express {_name(v)} on an integer grid.")
        c.memo[key] = rule.fine(c, v, g, f"{node.name}.fine", node)
    return c.memo[key]  # type: ignore[no-any-return]


def codes_of(c: Builder, v: Any, node: Node) -> Codes:
    """The activation codes a conv/gemm reads (through DequantizeLinear, maybe flattened)."""
    rule = RULES.get(type(v))
    if rule is None or rule.codes is None:
        raise c.fail(
            node,
            "its input is not DequantizeLinear(activation codes); every conv/gemm input must be quantized.",
        )
    return rule.codes(c, v, node)


def linear_terms(c: Builder, v: Any, node: Node) -> Terms:
    """(register, per-channel scales, bound) of each linear term of v, and v's per-channel constant."""
    rule = RULES[type(v)]
    if rule.terms is not None:
        return rule.terms(c, v, node)
    g = Fraction(2) ** (D.log2_floor(bound(v)) + 1 - FINE_TERM_BITS)
    reg, b = fine(c, v, g, node)
    return [(reg, [g], b)], None


def rescale(
    c: Builder, v: Any, target: Fraction, lo: int | None, hi: int | None, name: str, node: Node
) -> tuple[int, int]:
    """Emit ``clamp(round(v / target), lo, hi)`` for a linear value v: (register, max |result|)."""
    terms, offset = linear_terms(c, v, node)
    ratios = [[s / target for s in scales] for _, scales, _ in terms]
    offs = [o / target for o in offset] if offset is not None else None
    clamp = None if lo is None or hi is None else max(abs(lo), abs(hi))
    try:
        plan = D.plan_rescale(ratios, [b for _, _, b in terms], clamp, offs)
    except ValueError as e:
        raise c.fail(node, f"cannot requantize exactly: {e}.") from e
    if clamp is not None:
        dt: type = K.code_dtype(int(lo), int(hi))  # type: ignore[arg-type]
        out_bound = clamp
    else:
        dt = np.float64 if plan.path == "f64" else np.int64
        out_bound = 0
        for ch in range(plan.shifts.size):
            total = sum(
                b * abs(int(m[ch] if m.size > 1 else m[0])) for (_, _, b), m in zip(terms, plan.mults)
            )
            total += abs(int(plan.offset[ch])) if plan.offset is not None else 0
            out_bound = max(out_bound, (total >> int(plan.shifts[ch])) + 1)
    fn = partial(rescale_op, plan=plan, lo=lo, hi=hi, dt=dt)
    return c.emit(name, "Requantize", tuple(r for r, _, _ in terms), fn, c.layout(v.shape)), out_bound


# -- code tables (Add of dequantized codes) -----------------------------------------------------------------
def _table_operands(v: Any) -> list[Deq] | None:
    """The dequantized operands of v when v is one or the sum of two, over a small enough code domain."""
    terms = [v] if isinstance(v, Deq) else list(v.terms) if isinstance(v, Sum) else []
    if not 1 <= len(terms) <= 2 or not all(isinstance(t, Deq) for t in terms):
        return None
    size = math.prod(t.codes.hi - t.codes.lo + 1 for t in terms)
    return terms if size <= TABLE_LIMIT else None


def code_table(operands: list[Deq], s: Fraction, lo: int, hi: int) -> np.ndarray:
    """Output code for every operand-code combination, ``clamp(round_half_even(sum_i q_i * s_i / s), lo, hi)``
    in exact arithmetic: float64 decides every entry farther than 2^-40 of its terms' size from a tie (its
    error is below 2^-50 of that), and the few nearer ones are decided with fractions."""
    ratios = [d.scale / s for d in operands]
    codes = [np.arange(d.codes.lo, d.codes.hi + 1, dtype=np.float64) for d in operands]
    terms = [q * float(r) for q, r in zip(codes, ratios)]
    if len(terms) == 1:
        v, size = terms[0], np.abs(terms[0])
    else:
        v = terms[0][:, None] + terms[1][None, :]
        size = np.abs(terms[0])[:, None] + np.abs(terms[1])[None, :]
    q = np.rint(v)
    for idx in zip(*np.nonzero(np.abs(v - np.floor(v) - 0.5) <= (size + 1) * 2.0**-40)):
        q[idx] = round(sum((Fraction(int(x[i])) * r for x, i, r in zip(codes, idx, ratios)), Fraction(0)))
    return np.clip(q, lo, hi).astype(K.code_dtype(lo, hi)).reshape(-1)


def _requant_linear(c: Builder, v: Any, s: Fraction, lo: int, hi: int, name: str, node: Node) -> Codes:
    """Deq, Acc, Sum: the identity, a code table, or one dyadic requantization, in that preference."""
    if isinstance(v, Deq) and v.scale == s and lo <= v.codes.lo and v.codes.hi <= hi:
        return v.codes  # Q(DQ(q)) at the same scale is the identity
    operands = _table_operands(v)
    if operands is not None:
        table = code_table(operands, s, lo, hi)
        fn = partial(table_op, table=table, los=tuple(d.codes.lo for d in operands),
                     sizes=tuple(d.codes.hi - d.codes.lo + 1 for d in operands))  # fmt: skip
        reg = c.emit(name, "CodeTable", tuple(d.codes.reg for d in operands), fn, c.layout(v.shape))
        return Codes(reg, s, lo, hi, v.shape)
    reg, _ = rescale(c, v, s, lo, hi, name, node)
    return Codes(reg, s, lo, hi, v.shape)


def _fine_linear(c: Builder, v: Any, g: Fraction, name: str, node: Node) -> tuple[int, int]:
    return rescale(c, v, g, None, None, name, node)


# -- per type ----------------------------------------------------------------------------------------------
def _deq_bound(v: Deq) -> Fraction:
    return max(abs(v.codes.lo), abs(v.codes.hi)) * v.scale


def _deq_terms(c: Builder, v: Deq, node: Node) -> Terms:
    return [(v.codes.reg, [v.scale], max(abs(v.codes.lo), abs(v.codes.hi)))], None


def _deq_codes(c: Builder, v: Deq, node: Node) -> Codes:
    if v.scale != v.codes.scale:
        return Codes(v.codes.reg, v.scale, v.codes.lo, v.codes.hi, v.shape)
    return v.codes


def _acc_bound(v: Acc) -> Fraction:
    return v.bound * max(v.scales) + max((abs(o) for o in v.offset or ()), default=Fraction(0))


def _acc_terms(c: Builder, v: Acc, node: Node) -> Terms:
    return [(v.reg, v.scales, v.bound)], v.offset


def _sum_bound(v: Sum) -> Fraction:
    return sum((bound(t) for t in v.terms), Fraction(0))


def _sum_terms(c: Builder, v: Sum, node: Node) -> Terms:
    terms: list[tuple[int, list[Fraction], int]] = []
    offset: list[Fraction] | None = None
    for t in v.terms:
        more, off = linear_terms(c, t, node)
        terms += more
        if off is not None:
            offset = off if offset is None else [a + b for a, b in zip(offset, off)]
    return terms, offset


def _clip_bound(v: Clip) -> Fraction:
    b = bound(v.x)
    if math.isfinite(v.lo) and math.isfinite(v.hi):
        b = min(b, max(abs(Fraction(v.lo)), abs(Fraction(v.hi))))
    return b


def _clip_requant(c: Builder, v: Clip, s: Fraction, lo: int, hi: int, name: str, node: Node) -> Codes:
    a, b = code_of(v.lo, s), code_of(v.hi, s)
    lo2, hi2 = int(min(max(a, lo), hi)), int(min(max(b, lo), hi))
    return requant(c, v.x, s, lo2, hi2, name, node)


def _clip_fine(c: Builder, v: Clip, g: Fraction, name: str, node: Node) -> tuple[int, int]:
    reg, b = fine(c, v.x, g, node)
    lo = -math.inf if math.isinf(v.lo) else float(round(frac(v.lo) / g))
    hi = math.inf if math.isinf(v.hi) else float(round(frac(v.hi) / g))
    fn = partial(clip_op, lo=lo, hi=hi)
    return c.emit(name, "Clip", (reg,), fn, c.layout(v.shape)), int(min(b, max(abs(lo), abs(hi))))


def _inner_bound(v: Pool | Flat) -> Fraction:
    return bound(v.x)


def _pool_requant(c: Builder, v: Pool, s: Fraction, lo: int, hi: int, name: str, node: Node) -> Codes:
    if v.kind == "max":
        inner = requant(c, v.x, s, lo, hi, name, node)
        assert v.kernel is not None  # max pooling always has a window
        fn = partial(K.max_pool, kernel=v.kernel, strides=v.strides, pads=v.pads, pad_value=lo)
        return Codes(c.emit(name, "MaxPool", (inner.reg,), fn, "nhwc"), s, lo, hi, v.shape)
    count = math.prod(v.kernel) if v.kernel is not None else v.x.shape[1] * v.x.shape[2]
    g = Fraction(2) ** (D.log2_floor(bound(v.x) * count) + 1 - FINE_SUM_BITS)
    f, fbound = fine(c, v.x, g, node)
    fn = partial(K.window_sum, kernel=v.kernel, strides=v.strides, pads=v.pads)
    summed = Acc(c.emit(name, "PoolSum", (f,), fn, "nhwc"), [g / count], count * fbound, v.shape)
    reg, _ = rescale(c, summed, s, lo, hi, name, node)
    return Codes(reg, s, lo, hi, v.shape)


def _pool_fine(c: Builder, v: Pool, g: Fraction, name: str, node: Node) -> tuple[int, int]:
    if v.kind != "max":
        raise c.fail(node, f"cannot express {_name(v)} on an integer grid.")
    reg, b = fine(c, v.x, g, node)
    assert v.kernel is not None
    fn = partial(K.max_pool, kernel=v.kernel, strides=v.strides, pads=v.pads, pad_value=-(b + 1))
    return c.emit(name, "MaxPool", (reg,), fn, "nhwc"), b


def _flat_requant(c: Builder, v: Flat, s: Fraction, lo: int, hi: int, name: str, node: Node) -> Codes:
    inner = requant(c, v.x, s, lo, hi, name, node)
    return Codes(c.emit(name, "Flatten", (inner.reg,), flatten_codes, "nf"), s, lo, hi, v.shape)


def _flat_fine(c: Builder, v: Flat, g: Fraction, name: str, node: Node) -> tuple[int, int]:
    reg, b = fine(c, v.x, g, node)
    return c.emit(name, "Flatten", (reg,), flatten_codes, "nf"), b


def _flat_codes(c: Builder, v: Flat, node: Node) -> Codes:
    inner = codes_of(c, v.x, node)
    reg = c.emit(f"{node.name}.flatten", "Flatten", (inner.reg,), flatten_codes, "nf")
    return Codes(reg, inner.scale, inner.lo, inner.hi, v.shape)


RULES: dict[type, Rule] = {
    Deq: Rule(_deq_bound, _requant_linear, _fine_linear, _deq_terms, _deq_codes),
    Acc: Rule(_acc_bound, _requant_linear, _fine_linear, _acc_terms),
    Sum: Rule(_sum_bound, _requant_linear, _fine_linear, _sum_terms),
    Clip: Rule(_clip_bound, _clip_requant, _clip_fine),
    Pool: Rule(_inner_bound, _pool_requant, _pool_fine),
    Flat: Rule(_inner_bound, _flat_requant, _flat_fine, codes=_flat_codes),
}
