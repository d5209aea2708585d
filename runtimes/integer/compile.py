"""Compile a QDQ ONNX graph (DESIGN §4) into a straight-line program of integer ops.

Every float tensor between two quantizers is kept symbolic (a *value*: dequantized codes, a conv/gemm
accumulator with its per-channel scale, a sum of those, a clip, a pool, a flatten) and lowered only where a
QuantizeLinear consumes it, straight to that quantizer's codes:

- conv/gemm accumulator [-> Relu/Clip] -> Q: one dyadic requantization; ReLU/ReLU6 become the code clamp
  (``round`` is monotone, so ``round(min(v, 6) / s) == min(round(v / s), round(6 / s))``).
- Add of dequantized codes [-> Relu] -> Q: a lookup table over every pair of operand codes, computed with
  exact rational rounding, when the pairs are few (<= 2^16); otherwise both operands' codes times dyadic
  multipliers to the consumer's scale, one rounding.
- MaxPool commutes with any per-channel monotone map, so it runs on the consumer's codes.
- Global/average pooling -> Q: the input is first put on a fine power-of-two grid (error below 2^-30 of the
  range, summed exactly in int32 range), then summed and divided by a dyadic multiplier.

Anything else between quantizers raises a BundleError naming the node: nothing falls back to float. The only
float ops are quantizing the network input (a float64 quotient of the float32 operands, which decides every
rounding exactly) and dequantizing the output logits. Every rounding is thus that of exact arithmetic (up to
the >= 31-bit dyadic multipliers), the meaning of the fake-quant model that the float32 forward only
approximates (DESIGN §2).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from runtimes.integer import kernels as K
from sdk.errors import BundleError

__all__ = ["LayerInfo", "Op", "Program", "QuantizerInfo", "compile_model"]

FINE_SUM_BITS = 30  # pooled sums of fine-grid values stay below 2^31 (an int32 adder)
FINE_TERM_BITS = 28  # fine-grid operands of a sum leave room for >= 31-bit multipliers in int64
INPUT, OUTPUT = "input", "logits"


# -- the program --------------------------------------------------------------------------------------------
@dataclass
class Op:
    """One step: ``regs[output] = fn(*regs[inputs])``."""

    name: str
    op_type: str
    inputs: tuple[int, ...]
    output: int
    fn: Callable[..., np.ndarray]


@dataclass(frozen=True)
class QuantizerInfo:
    """An activation quantizer of the graph: its QuantizeLinear output name, code range, and where it feeds.

    ``consumers`` are (node name, op type, input index) of the nodes reading its DequantizeLinear output;
    ``source`` is the node whose float output it quantizes ("input" for the network input).
    """

    name: str
    scale: float
    lo: int
    hi: int
    consumers: tuple[tuple[str, str, int], ...]
    source: str
    clip: str | None = None


@dataclass(frozen=True)
class LayerInfo:
    """A conv/linear layer as compiled: bits, the proven accumulator bound and the exact GEMM container."""

    name: str
    op_type: str
    w_bits: int
    a_bits: int
    k: int
    bound: int  # max |acc| over channels: sum_k |w_ck| * max|a| + |bias_c|
    coarse_bound: int  # K * max|w| * max|a| + max|bias|
    gemm: str  # the exact container: "float32", "float32x3->float64" (K split in 3 exact pieces), ...


@dataclass
class Program:
    ops: list[Op]
    input_reg: int
    output_reg: int
    input_shape: tuple[int, ...]
    quantizers: list[QuantizerInfo]
    layers: list[LayerInfo]
    codes_regs: dict[str, int]  # quantizer name -> register holding its codes
    layouts: dict[int, str]  # register -> "nhwc" | "nf"
    last_use: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for i, op in enumerate(self.ops):
            for r in op.inputs:
                self.last_use[r] = i


# -- symbolic values ----------------------------------------------------------------------------------------
Shape = tuple[int, ...]  # without the batch axis: (C, H, W) or (F,)


@dataclass(eq=False)
class _FloatInput:
    shape: Shape


@dataclass(eq=False)
class _Const:
    value: np.ndarray


@dataclass(eq=False)
class _IntConst:  # DequantizeLinear of an integer initializer: weight or bias codes with their scales
    codes: np.ndarray
    scale: np.ndarray
    axis: int


@dataclass(eq=False)
class _Codes:
    reg: int
    scale: Fraction
    lo: int
    hi: int
    shape: Shape


@dataclass(eq=False)
class _Deq:
    codes: _Codes
    scale: Fraction
    shape: Shape


@dataclass(eq=False)
class _Acc:  # value = reg * scales[c] + offset[c]
    reg: int
    scales: list[Fraction]
    bound: int
    shape: Shape
    offset: list[Fraction] | None = None  # what the int32 bias on the accumulator grid leaves out


@dataclass(eq=False)
class _Sum:
    terms: tuple[Any, ...]
    shape: Shape


@dataclass(eq=False)
class _Clip:
    x: Any
    lo: float
    hi: float
    shape: Shape


@dataclass(eq=False)
class _Pool:
    x: Any
    kind: str  # "max" | "avg"
    kernel: tuple[int, int] | None  # None: global
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]
    shape: Shape


@dataclass(eq=False)
class _Flat:
    x: Any
    shape: Shape


def _frac(x: Any) -> Fraction:
    return Fraction(float(np.float32(x)))


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _code_of(bound: float, s: Fraction) -> float:
    """The code a float clip bound maps to, ``round_half_even(fl32(bound) / s)`` exactly."""
    if math.isinf(bound):
        return bound
    return float(round(_frac(bound) / s))


def _flatten_codes(x: np.ndarray) -> np.ndarray:
    n = x.shape[0]
    if x.ndim == 2:
        return x
    if x.shape[1] * x.shape[2] == 1:
        return x.reshape(n, -1)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(n, -1)


def _input_quant(x: np.ndarray, s: float, lo: int, hi: int, dt: type) -> np.ndarray:
    """``clamp(round_half_even(x / s))`` of float32 x and s, exactly: the float64 quotient of two float32
    numbers is a rounding tie only when the exact quotient is, and never crosses one (for |x / s| < 2^28)."""
    y = np.empty((x.shape[0], x.shape[2], x.shape[3], x.shape[1]), dtype=np.float64)
    np.divide(x.transpose(0, 2, 3, 1), s, out=y, dtype=np.float64)
    np.rint(y, out=y)
    np.clip(y, lo, hi, out=y)
    return y.astype(dt)


def _rescale_op(
    *terms: np.ndarray, plan: K.RescalePlan, lo: int | None, hi: int | None, dt: type
) -> np.ndarray:
    return K.rescale(terms, plan, lo, hi, dt)


def _clip_op(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.clip(x, lo, hi)


TABLE_LIMIT = 1 << 16  # largest code domain tabulated (two 8-bit operands)


def _table_operands(v: Any) -> list[_Deq] | None:
    """The dequantized operands of v when v is one or the sum of two, over a small enough code domain."""
    terms = [v] if isinstance(v, _Deq) else list(v.terms) if isinstance(v, _Sum) else []
    if not 1 <= len(terms) <= 2 or not all(isinstance(t, _Deq) for t in terms):
        return None
    size = math.prod(t.codes.hi - t.codes.lo + 1 for t in terms)
    return terms if size <= TABLE_LIMIT else None


def _code_table(operands: list[_Deq], s: Fraction, lo: int, hi: int) -> np.ndarray:
    """Output code for every operand-code combination, ``clamp(round_half_even(sum_i q_i * s_i / s), lo, hi)``
    in exact arithmetic: float64 decides every entry farther than 2^-40 of its terms' size from a tie (its
    error is below 2^-50 of that), and the few nearer ones are decided with fractions."""
    ratios = [d.scale / s for d in operands]
    codes = [np.arange(d.codes.lo, d.codes.hi + 1, dtype=np.float64) for d in operands]
    terms = [c * float(r) for c, r in zip(codes, ratios)]
    if len(terms) == 1:
        v, size = terms[0], np.abs(terms[0])
    else:
        v = terms[0][:, None] + terms[1][None, :]
        size = np.abs(terms[0])[:, None] + np.abs(terms[1])[None, :]
    q = np.rint(v)
    for idx in zip(*np.nonzero(np.abs(v - np.floor(v) - 0.5) <= (size + 1) * 2.0**-40)):
        q[idx] = round(sum((Fraction(int(c[i])) * r for c, i, r in zip(codes, idx, ratios)), Fraction(0)))
    return np.clip(q, lo, hi).astype(K.code_dtype(lo, hi)).reshape(-1)


def _table_op(
    *codes: np.ndarray, table: np.ndarray, los: tuple[int, ...], sizes: tuple[int, ...]
) -> np.ndarray:
    idx = codes[0].astype(np.int32)
    if los[0]:
        idx -= los[0]
    if len(codes) == 2:
        idx *= sizes[1]
        idx += codes[1]
        if los[1]:
            idx -= los[1]
    return table[idx]


# -- the compiler -------------------------------------------------------------------------------------------
class _Compiler:
    def __init__(self, model: onnx.ModelProto, layer_bits: Mapping[str, tuple[int, int]]) -> None:
        self.graph = model.graph
        self.layer_bits = layer_bits
        self.values: dict[str, Any] = {}
        self.ops: list[Op] = []
        self.nregs = 0
        self.layouts: dict[int, str] = {}
        self.memo: dict[tuple[Any, ...], Any] = {}
        self.quantizers: list[QuantizerInfo] = []
        self.codes_regs: dict[str, int] = {}
        self.layers: list[LayerInfo] = []
        self.skip: set[str] = set()  # outputs of nodes folded into another (the Clip of QCDQ)
        self.consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
        self.producer: dict[str, onnx.NodeProto] = {}
        for node in self.graph.node:
            for i, name in enumerate(node.input):
                self.consumers.setdefault(name, []).append((node, i))
            for name in node.output:
                self.producer[name] = node
        for init in self.graph.initializer:
            self.values[init.name] = _Const(numpy_helper.to_array(init))

    # registers and ops
    def reg(self, layout: str) -> int:
        self.nregs += 1
        self.layouts[self.nregs] = layout
        return self.nregs

    def emit(
        self, name: str, op_type: str, inputs: tuple[int, ...], fn: Callable[..., np.ndarray], layout: str
    ) -> int:
        out = self.reg(layout)
        self.ops.append(Op(name, op_type, inputs, out, fn))
        return out

    @staticmethod
    def layout(shape: Shape) -> str:
        return "nhwc" if len(shape) == 3 else "nf"

    # lookups
    def value(self, node: onnx.NodeProto, i: int) -> Any:
        if i >= len(node.input) or not node.input[i]:
            return None
        try:
            return self.values[node.input[i]]
        except KeyError:
            raise BundleError(
                f"node {node.name!r} reads {node.input[i]!r}, which nothing produces."
            ) from None

    def const(self, node: onnx.NodeProto, i: int, what: str) -> np.ndarray | None:
        v = self.value(node, i)
        if v is None:
            return None
        if not isinstance(v, _Const):
            raise BundleError(f"{node.op_type} {node.name!r}: {what} must be a constant initializer.")
        return v.value

    def fail(self, node: onnx.NodeProto, why: str) -> BundleError:
        return BundleError(
            f"integer runtime: {node.op_type} node {node.name!r}: {why} The integer engine runs only the QDQ "
            "pattern of DESIGN §4 and does not fall back to float; use a float target for this model."
        )

    # -- lowering a value to codes / to a fine grid ---------------------------------------------------------
    def vbound(self, v: Any) -> Fraction:
        """A rigorous bound on |v|."""
        if isinstance(v, _Deq):
            return max(abs(v.codes.lo), abs(v.codes.hi)) * v.scale
        if isinstance(v, _Acc):
            return v.bound * max(v.scales) + max((abs(o) for o in v.offset or ()), default=Fraction(0))
        if isinstance(v, _Sum):
            return sum((self.vbound(t) for t in v.terms), Fraction(0))
        if isinstance(v, _Clip):
            b = self.vbound(v.x)
            if math.isfinite(v.lo) and math.isfinite(v.hi):
                b = min(b, max(abs(Fraction(v.lo)), abs(Fraction(v.hi))))
            return b
        if isinstance(v, (_Pool, _Flat)):
            return self.vbound(v.x)
        raise TypeError(type(v))

    def linear_terms(
        self, v: Any, node: onnx.NodeProto
    ) -> tuple[list[tuple[int, list[Fraction], int]], list[Fraction] | None]:
        """(register, per-channel scales, bound) of each linear term of v, and v's per-channel constant."""
        if isinstance(v, _Deq):
            return [(v.codes.reg, [v.scale], max(abs(v.codes.lo), abs(v.codes.hi)))], None
        if isinstance(v, _Acc):
            return [(v.reg, v.scales, v.bound)], v.offset
        if isinstance(v, _Sum):
            terms: list[tuple[int, list[Fraction], int]] = []
            offset: list[Fraction] | None = None
            for t in v.terms:
                more, off = self.linear_terms(t, node)
                terms += more
                if off is not None:
                    offset = off if offset is None else [a + b for a, b in zip(offset, off)]
            return terms, offset
        g = Fraction(2) ** (K.log2_floor(self.vbound(v)) + 1 - FINE_TERM_BITS)
        reg, bound = self.fine(v, g, node)
        return [(reg, [g], bound)], None

    def rescale(
        self, v: Any, target: Fraction, lo: int | None, hi: int | None, name: str, node: onnx.NodeProto
    ) -> tuple[int, int]:
        """Emit ``clamp(round(v / target), lo, hi)`` for a linear value v: (register, max |result|)."""
        terms, offset = self.linear_terms(v, node)
        ratios = [[s / target for s in scales] for _, scales, _ in terms]
        offs = [o / target for o in offset] if offset is not None else None
        clamp = None if lo is None or hi is None else max(abs(lo), abs(hi))
        try:
            plan = K.plan_rescale(ratios, [b for _, _, b in terms], clamp, offs)
        except ValueError as e:
            raise self.fail(node, f"cannot requantize exactly: {e}.") from e
        if clamp is not None:
            dt: type = K.code_dtype(int(lo), int(hi))  # type: ignore[arg-type]
            bound = clamp
        else:
            dt = np.float64 if plan.path == "f64" else np.int64
            bound = 0
            for c in range(plan.shifts.size):
                total = sum(
                    b * abs(int(m[c] if m.size > 1 else m[0])) for (_, _, b), m in zip(terms, plan.mults)
                )
                total += abs(int(plan.offset[c])) if plan.offset is not None else 0
                bound = max(bound, (total >> int(plan.shifts[c])) + 1)
        fn = partial(_rescale_op, plan=plan, lo=lo, hi=hi, dt=dt)
        return self.emit(name, "Requantize", tuple(r for r, _, _ in terms), fn, self.layout(v.shape)), bound

    def requant(self, v: Any, s: Fraction, lo: int, hi: int, name: str, node: onnx.NodeProto) -> _Codes:
        key = ("q", v, s, lo, hi)
        if key in self.memo:
            return self.memo[key]  # type: ignore[no-any-return]
        out: _Codes
        if isinstance(v, _Flat):
            inner = self.requant(v.x, s, lo, hi, name, node)
            reg = self.emit(name, "Flatten", (inner.reg,), _flatten_codes, "nf")
            out = _Codes(reg, s, lo, hi, v.shape)
        elif isinstance(v, _Clip):
            a, b = _code_of(v.lo, s), _code_of(v.hi, s)
            lo2, hi2 = int(min(max(a, lo), hi)), int(min(max(b, lo), hi))
            out = self.requant(v.x, s, lo2, hi2, name, node)
        elif isinstance(v, _Pool) and v.kind == "max":
            inner = self.requant(v.x, s, lo, hi, name, node)
            assert v.kernel is not None  # max pooling always has a window
            fn = partial(K.max_pool, kernel=v.kernel, strides=v.strides, pads=v.pads, pad_value=lo)
            out = _Codes(self.emit(name, "MaxPool", (inner.reg,), fn, "nhwc"), s, lo, hi, v.shape)
        elif isinstance(v, _Pool):
            count = math.prod(v.kernel) if v.kernel is not None else v.x.shape[1] * v.x.shape[2]
            g = Fraction(2) ** (K.log2_floor(self.vbound(v.x) * count) + 1 - FINE_SUM_BITS)
            f, fbound = self.fine(v.x, g, node)
            fn = partial(K.window_sum, kernel=v.kernel, strides=v.strides, pads=v.pads)
            summed = _Acc(self.emit(name, "PoolSum", (f,), fn, "nhwc"), [g / count], count * fbound, v.shape)
            reg, _ = self.rescale(summed, s, lo, hi, name, node)
            out = _Codes(reg, s, lo, hi, v.shape)
        elif isinstance(v, _Deq) and v.scale == s and lo <= v.codes.lo and v.codes.hi <= hi:
            out = v.codes  # Q(DQ(q)) at the same scale is the identity
        elif (operands := _table_operands(v)) is not None:
            table = _code_table(operands, s, lo, hi)
            fn = partial(_table_op, table=table, los=tuple(d.codes.lo for d in operands),
                         sizes=tuple(d.codes.hi - d.codes.lo + 1 for d in operands))  # fmt: skip
            reg = self.emit(name, "CodeTable", tuple(d.codes.reg for d in operands), fn, self.layout(v.shape))
            out = _Codes(reg, s, lo, hi, v.shape)
        elif isinstance(v, (_Deq, _Acc, _Sum)):
            reg, _ = self.rescale(v, s, lo, hi, name, node)
            out = _Codes(reg, s, lo, hi, v.shape)
        else:
            raise self.fail(
                node, f"its input is {type(v).__name__.strip('_')}, not an integer-expressible value."
            )
        self.memo[key] = out
        return out

    def fine(self, v: Any, g: Fraction, node: onnx.NodeProto) -> tuple[int, int]:
        """Emit round(v / g) on the fine grid g (exact integers in float64/int64), and max |result|."""
        key = ("f", v, g)
        if key in self.memo:
            return self.memo[key]  # type: ignore[no-any-return]
        name = f"{node.name}.fine"
        out: tuple[int, int]
        if isinstance(v, _Flat):
            reg, bound = self.fine(v.x, g, node)
            out = self.emit(name, "Flatten", (reg,), _flatten_codes, "nf"), bound
        elif isinstance(v, _Clip):
            reg, bound = self.fine(v.x, g, node)
            a = -math.inf if math.isinf(v.lo) else float(round(Fraction(float(np.float32(v.lo))) / g))
            b = math.inf if math.isinf(v.hi) else float(round(Fraction(float(np.float32(v.hi))) / g))
            out = (
                self.emit(name, "Clip", (reg,), partial(_clip_op, lo=a, hi=b), self.layout(v.shape)),
                int(min(bound, max(abs(a), abs(b)))),
            )
        elif isinstance(v, _Pool) and v.kind == "max":
            reg, bound = self.fine(v.x, g, node)
            assert v.kernel is not None
            fn = partial(K.max_pool, kernel=v.kernel, strides=v.strides, pads=v.pads, pad_value=-(bound + 1))
            out = self.emit(name, "MaxPool", (reg,), fn, "nhwc"), bound
        elif isinstance(v, (_Deq, _Acc, _Sum)):
            out = self.rescale(v, g, None, None, name, node)
        else:
            raise self.fail(node, f"cannot express {type(v).__name__.strip('_')} on an integer grid.")
        self.memo[key] = out
        return out

    def codes_of(self, v: Any, node: onnx.NodeProto) -> _Codes:
        """The activation codes a conv/gemm reads (through DequantizeLinear, maybe flattened)."""
        if isinstance(v, _Deq):
            if v.scale != v.codes.scale:
                return _Codes(v.codes.reg, v.scale, v.codes.lo, v.codes.hi, v.shape)
            return v.codes
        if isinstance(v, _Flat):
            inner = self.codes_of(v.x, node)
            reg = self.emit(f"{node.name}.flatten", "Flatten", (inner.reg,), _flatten_codes, "nf")
            return _Codes(reg, inner.scale, inner.lo, inner.hi, v.shape)
        raise self.fail(
            node,
            "its input is not DequantizeLinear(activation codes); every conv/gemm input must be quantized.",
        )

    # -- entry --------------------------------------------------------------------------------------------
    def compile(self) -> Program:
        from runtimes.integer import nodes as _integer_nodes  # the per-op handlers

        inputs = [i for i in self.graph.input if i.name not in self.values]
        if [i.name for i in inputs] != [INPUT] or [o.name for o in self.graph.output] != [OUTPUT]:
            raise BundleError(
                f"the integer runtime needs one input {INPUT!r} and one output {OUTPUT!r} (DESIGN §4); the "
                f"graph "
                f"has inputs {[i.name for i in inputs]} and outputs {[o.name for o in self.graph.output]}."
            )
        dims = inputs[0].type.tensor_type.shape.dim
        shape = tuple(d.dim_value for d in dims[1:])
        if len(shape) != 3 or any(d <= 0 for d in shape):
            raise BundleError(f"input {INPUT!r} must be NCHW with static C, H, W; got dims {list(dims)}.")
        self.values[INPUT] = _FloatInput(shape)
        input_reg = self.reg("nchw")
        self.input_reg = input_reg
        for idx, node in enumerate(self.graph.node):
            if node.output and node.output[0] in self.skip:
                continue
            handler = _integer_nodes.HANDLERS.get(node.op_type)
            if handler is None:
                raise self.fail(
                    node,
                    f"op {node.op_type} is not supported (supported: {sorted(_integer_nodes.HANDLERS)}).",
                )
            handler(self, node, idx)
        out = _integer_nodes.output(self, self.values.get(OUTPUT))
        ops = _fuse_requantization(self.ops, {out, *self.codes_regs.values()})
        return Program(
            ops, input_reg, out, shape, self.quantizers, self.layers, self.codes_regs, self.layouts
        )


def _fuse_requantization(ops: list[Op], keep: set[int]) -> list[Op]:
    """Run a requantization inside the conv/gemm that is its only input, block by block while in cache."""
    uses: dict[int, int] = {}
    for op in ops:
        for r in op.inputs:
            uses[r] = uses.get(r, 0) + 1
    out: list[Op] = []
    where: dict[int, int] = {}  # register -> index in out of the op producing it
    for op in ops:
        src = out[where[op.inputs[0]]] if op.inputs and op.inputs[0] in where else None
        if (
            op.op_type == "Requantize"
            and len(op.inputs) == 1
            and src is not None
            and src.op_type in ("Conv", "Gemm", "MatMul")
            and uses[src.output] == 1
            and src.output not in keep
            and isinstance(src.fn, partial)
        ):
            fn = partial(src.fn.func, *src.fn.args, **{**src.fn.keywords, "epilogue": op.fn})
            i = where.pop(src.output)
            out[i] = Op(src.name, f"{src.op_type}+Requantize", src.inputs, op.output, fn)
            where[op.output] = i
            continue
        where[op.output] = len(out)
        out.append(op)
    return out


def compile_model(model: onnx.ModelProto, layer_bits: Mapping[str, tuple[int, int]] | None = None) -> Program:
    """Compile a QDQ ONNX model into an integer :class:`Program`; BundleError names any unsupported node."""
    return _Compiler(model, layer_bits or {}).compile()
