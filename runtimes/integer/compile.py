"""Compile a QDQ ONNX graph (DESIGN §4) into a straight-line program of integer ops.

Every float tensor between two quantizers is kept symbolic (:mod:`runtimes.integer.values`), built node
by node by the handlers of :mod:`runtimes.integer.nodes` (one table keyed by ONNX op type), and lowered
only where a QuantizeLinear consumes it, straight to that quantizer's codes (:mod:`runtimes.integer.lower`).
Anything else between quantizers raises a BundleError naming the node: nothing falls back to float. The
only float ops are quantizing the network input (a float64 quotient of the float32 operands, which decides
every rounding exactly) and dequantizing the output logits. Every rounding is thus that of exact arithmetic
(up to the >= 31-bit dyadic multipliers), the meaning of the fake-quant model that the float32 forward only
approximates (DESIGN §2).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np
import onnx

from runtimes.integer.builder import Builder
from runtimes.integer.lower import codes_of
from runtimes.integer.nodes import HANDLERS
from runtimes.integer.ops import deq_out
from runtimes.integer.program import INPUT, OUTPUT, LayerInfo, Op, Program, QuantizerInfo
from runtimes.integer.values import Acc, Deq, Flat, FloatInput
from sdk.errors import BundleError

__all__ = ["LayerInfo", "Op", "Program", "QuantizerInfo", "compile_model"]


def compile_model(model: onnx.ModelProto, layer_bits: Mapping[str, tuple[int, int]] | None = None) -> Program:
    """Compile a QDQ ONNX model into an integer :class:`Program`; BundleError names any unsupported node."""
    c = Builder(model, layer_bits or {})
    shape = _input(c)
    for idx, node in enumerate(c.graph.node):
        if node.output and node.output[0] in c.skip:
            continue
        handler = HANDLERS.get(node.op_type)
        if handler is None:
            raise c.fail(node, f"op {node.op_type} is not supported (supported: {sorted(HANDLERS)}).")
        handler(c, node, idx)
    out = _output(c, c.values.get(OUTPUT))
    ops = _fuse_requantization(c.ops, {out, *c.codes_regs.values()})
    return Program(ops, c.input_reg, out, shape, c.quantizers, c.layers, c.codes_regs, c.layouts)


def _input(c: Builder) -> tuple[int, ...]:
    """Check the graph's one input and one output; bind the input register; the input's (C, H, W)."""
    inputs = [i for i in c.graph.input if i.name not in c.values]
    if [i.name for i in inputs] != [INPUT] or [o.name for o in c.graph.output] != [OUTPUT]:
        raise BundleError(
            f"the integer runtime needs one input {INPUT!r} and one output {OUTPUT!r} (DESIGN §4); the "
            f"graph "
            f"has inputs {[i.name for i in inputs]} and outputs {[o.name for o in c.graph.output]}."
        )
    dims = inputs[0].type.tensor_type.shape.dim
    shape = tuple(d.dim_value for d in dims[1:])
    if len(shape) != 3 or any(d <= 0 for d in shape):
        raise BundleError(f"input {INPUT!r} must be NCHW with static C, H, W; got dims {list(dims)}.")
    c.values[INPUT] = FloatInput(shape)
    c.input_reg = c.reg("nchw")
    return shape


def _output(c: Builder, v: Any) -> int:
    """Emit the final (and only other float) op: dequantize the logits."""
    if isinstance(v, Deq) or (isinstance(v, Flat) and isinstance(v.x, Deq)):
        codes = codes_of(c, v, onnx.helper.make_node("Identity", [OUTPUT], [OUTPUT], name=OUTPUT))
        s32 = np.float32(float(v.scale if isinstance(v, Deq) else v.x.scale))
        return c.emit(OUTPUT, "DequantizeOutput", (codes.reg,), partial(deq_out, s=s32), "out")
    if isinstance(v, Acc):
        scales = np.array([float(s) for s in v.scales])
        return c.emit(OUTPUT, "DequantizeOutput", (v.reg,), partial(deq_out, s=scales), "out")
    raise BundleError(
        "integer runtime: the output 'logits' must be DequantizeLinear of the quantized logits (or the last "
        f"layer's accumulator); got {type(v).__name__}."
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
