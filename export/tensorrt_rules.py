"""What TensorRT's ONNX parser and explicit-quantization builder accept, as checks on an ONNX graph.

Each rule cites where TensorRT documents it, so a reader can check the rule against the source:

- [ops] onnx-tensorrt ``docs/operators.md`` (TensorRT 10 support matrix: opset range, supported types per
  operator and restrictions; https://github.com/onnx/onnx-tensorrt/blob/main/docs/operators.md).
- [importer] onnx-tensorrt ``onnxOpImporters.cpp``: ``QuantDequantLinearHelper`` (zero point, scale, axis
  checks) and the ``Clip`` importer (bounds read as float initializers).
- [eq] TensorRT Developer Guide, "Explicit Quantization" (https://docs.nvidia.com/deeplearning/tensorrt/
  latest/inference-library/quantized-types-explicit-quantization.html): "Quantized Weights", "Q/DQ Layer-
  Placement Recommendations", "Q/DQ Fusion".
- [bias] onnxruntime#14229 and NVIDIA/TensorRT#3360: an INT32 bias behind DequantizeLinear stops the parser.

Torch-free: ``violations(model)`` lists every broken rule; the tensorrt lowering's last pass and the
conformance test both call it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto

from export._graph import Graph, attr, onnx_opset

__all__ = ["Rule", "RULES", "OPSETS", "SUPPORTED_TYPES", "violations"]

F32, F16, BF16 = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16
I8, I32, I64 = TensorProto.INT8, TensorProto.INT32, TensorProto.INT64
U8, BOOL = TensorProto.UINT8, TensorProto.BOOL
FLOATS = (F32, F16, BF16)

#: [ops] "TensorRT 10.0 supports operators in the inclusive range of opset 9 to opset 20"
OPSETS = range(9, 21)
#: [ops] the "Supported Types" column (type of the data input) for every operator a bpnas graph can hold
SUPPORTED_TYPES: dict[str, tuple[int, ...]] = {
    "Add": (*FLOATS, I32, I64),
    "AveragePool": FLOATS,
    "BatchNormalization": FLOATS,
    "Clip": FLOATS,
    "Concat": (*FLOATS, I32, I64, BOOL),
    "Conv": FLOATS,
    "DequantizeLinear": (I8,),  # also FP8, INT4, which bpnas never emits
    "Flatten": (*FLOATS, I32, I64, BOOL),
    "Gemm": FLOATS,
    "GlobalAveragePool": FLOATS,
    "Identity": (*FLOATS, I32, I64, BOOL),
    "MaxPool": FLOATS,
    "Mul": (*FLOATS, I32, I64),
    "QuantizeLinear": FLOATS,
    "Relu": (*FLOATS, I32, I64),
    "Reshape": (*FLOATS, I32, I64, BOOL),
    "Sigmoid": FLOATS,
}
_WEIGHTED = ("Conv", "Gemm")


@dataclass(frozen=True)
class Rule:
    """One documented requirement: ``check(graph, types)`` yields a message per offending node."""

    name: str
    source: str
    check: Callable[[Graph, dict[str, int]], Iterator[str]]


def _opset(g: Graph, types: dict[str, int]) -> Iterator[str]:
    for op in g.model.opset_import:
        if op.domain not in ("", "ai.onnx"):
            yield f"custom domain {op.domain!r} (TensorRT has no importer for it without a plugin)"
    if onnx_opset(g.model) not in OPSETS:
        yield f"opset {onnx_opset(g.model)} outside {OPSETS.start}..{OPSETS.stop - 1}"


def _op_types(g: Graph, types: dict[str, int]) -> Iterator[str]:
    for n in g.g.node:
        allowed = SUPPORTED_TYPES.get(n.op_type)
        if allowed is None:
            yield f"{n.name or n.op_type}: operator {n.op_type} is not in the checked support table"
        elif types.get(n.input[0]) not in allowed:
            yield f"{n.name or n.op_type}: {n.op_type} reads {_type_name(types.get(n.input[0]))}"


def _uint8_only_at_io(g: Graph, types: dict[str, int]) -> Iterator[str]:
    io = {v.name for v in g.g.input} | g.outputs
    used = {t for n in g.g.node for t in [*n.input, *n.output] if t}
    for name in sorted(used - io):
        if types.get(name) == U8:
            yield f"tensor {name!r} is UINT8 (only network inputs and outputs may be)"


def _qdq_params(g: Graph, types: dict[str, int]) -> Iterator[str]:
    for n in g.g.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        scale = g.const(n.input[1])
        if scale is None or g.const_type(n.input[1]) != F32:
            yield f"{n.name}: scale is not a float32 initializer"
        elif not (np.all(scale > 0) and np.all(np.isfinite(scale))):
            yield f"{n.name}: scale has entries that are not positive and finite"
        zp = g.const(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if zp is None or g.const_type(n.input[2]) != I8:
            yield f"{n.name}: zero point is not an int8 initializer (a missing one means uint8)"
        elif np.any(zp != 0):
            yield f"{n.name}: zero point is not 0 (TensorRT quantizes symmetrically)"
        elif scale is not None and zp.size != scale.size:
            yield f"{n.name}: zero point and scale differ in size"


def _per_channel(g: Graph, types: dict[str, int]) -> Iterator[str]:
    for n in g.g.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        scale = g.const(n.input[1])
        if scale is None or scale.size == 1:
            continue
        data = g.const(n.input[0])
        if data is None:
            yield f"{n.name}: per-channel scales on an activation (TensorRT quantizes activations per tensor)"
        elif int(attr(n, "axis", 1)) % data.ndim != 0 or data.shape[0] != scale.size or scale.ndim != 1:
            yield f"{n.name}: per-channel weight scales must be 1-D along axis 0 (output channels)"


def _q_read_by_dq_only(g: Graph, types: dict[str, int]) -> Iterator[str]:
    for n in g.g.node:
        if n.op_type != "QuantizeLinear":
            continue
        if n.output[0] in g.outputs:
            yield f"{n.name}: an int8 tensor is a network output"
        for c in g.consumers.get(n.output[0], []):
            if c.op_type != "DequantizeLinear":
                yield f"{n.name}: its int8 output is read by {c.op_type} {c.name!r}, not by DequantizeLinear"


def _constant_inputs(g: Graph, types: dict[str, int]) -> Iterator[str]:
    for n in g.g.node:
        if n.op_type == "Clip":
            for k in (1, 2):
                if len(n.input) > k and n.input[k] and g.const_type(n.input[k]) not in FLOATS:
                    yield f"{n.name}: Clip bound {n.input[k]!r} is not a float initializer"
        if n.op_type == "DequantizeLinear" and types.get(n.input[0]) == I32:
            yield f"{n.name}: DequantizeLinear of INT32 (a bias) stops the parser"


def _weighted_inputs(g: Graph, types: dict[str, int]) -> Iterator[str]:
    for n in g.g.node:
        if n.op_type not in _WEIGHTED:
            continue
        w = g.producer.get(n.input[1])
        if w is None or w.op_type != "DequantizeLinear":
            continue  # a float layer: TensorRT runs it in float, which the spec asks for
        if g.const(w.input[0]) is None:
            yield f"{n.name}: its quantized weights are not a constant int8 initializer"
        x = g.producer.get(n.input[0])
        if x is None or x.op_type != "DequantizeLinear":
            yield f"{n.name}: int8 weights but a float input (TensorRT fuses int8 only with both quantized)"
        if len(n.input) > 2 and n.input[2] and g.const_type(n.input[2]) not in FLOATS:
            yield f"{n.name}: its bias is not a float initializer"


def _add_inputs(g: Graph, types: dict[str, int]) -> Iterator[str]:
    for n in g.g.node:
        if n.op_type != "Add":
            continue
        from_dq = [getattr(g.producer.get(i), "op_type", None) == "DequantizeLinear" for i in n.input]
        if any(from_dq) and not all(from_dq):
            yield f"{n.name}: one input dequantized, one float (quantize both for the int8 add)"


def _pool_attrs(g: Graph, types: dict[str, int]) -> Iterator[str]:
    for n in g.g.node:
        if n.op_type in ("MaxPool", "AveragePool"):
            if any(d != 1 for d in attr(n, "dilations", []) or []):
                yield f"{n.name}: {n.op_type} dilations must be empty or all ones"
            if len(n.output) > 1 and n.output[1]:
                yield f"{n.name}: MaxPool Indices output is unsupported"


RULES: tuple[Rule, ...] = (
    Rule("opset", "[ops] header: opsets 9..20 in the default domain", _opset),
    Rule("op_types", "[ops] support matrix: operator supported, data input of a listed type", _op_types),
    Rule("uint8_io_only", "[ops] note: UINT8 only as network input or output type", _uint8_only_at_io),
    Rule(
        "qdq_scale_zero_point",
        "[ops] Q/DQ rows: zero point must be 0; [importer] QuantDequantLinearHelper: scales positive, "
        "int8 zero point (uint8 is replaced by int8, which changes the codes), sizes equal",
        _qdq_params,
    ),
    Rule(
        "per_channel_axis",
        "[importer] QuantDequantLinearHelper: per-axis scales are weights KCRS, one per output channel; "
        "activations per tensor",
        _per_channel,
    ),
    Rule(
        "int8_read_by_dq_only",
        "[ops] note: INT8 is a quantized type, available only through Q/DQ; the Clip importer has no INT8 "
        "case, so nothing but DequantizeLinear may read a QuantizeLinear output",
        _q_read_by_dq_only,
    ),
    Rule(
        "float_constants",
        "[importer] Clip: bounds are float initializers; [ops] DequantizeLinear takes INT8/FP8/INT4; [bias]",
        _constant_inputs,
    ),
    Rule(
        "weighted_inputs_quantized",
        "[eq] Quantized Weights (a DQ between pre-quantized weights and the linear operator) and Q/DQ "
        "Layer-Placement Recommendations (quantize all inputs of weighted operations)",
        _weighted_inputs,
    ),
    Rule(
        "add_inputs_quantized",
        "[eq] Q/DQ Layer-Placement Recommendations: quantize both inputs of element-wise addition (the add "
        "is then fused with its input DQs and output Q)",
        _add_inputs,
    ),
    Rule("pool_attrs", "[ops] MaxPool/AveragePool restrictions: 2D, no dilation, no Indices", _pool_attrs),
)


def _type_name(t: int | None) -> str:
    return "an unknown type" if t is None else TensorProto.DataType.Name(t)


def tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor (inputs, initializers, inferred intermediates, outputs)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {t.name: int(t.data_type) for t in g.initializer}
    for v in [*g.input, *g.value_info, *g.output]:
        if v.type.tensor_type.elem_type:
            types[v.name] = int(v.type.tensor_type.elem_type)
    return types


def violations(model: onnx.ModelProto) -> list[tuple[str, str]]:
    """(rule name, message) for every rule the graph breaks; empty when TensorRT accepts it."""
    g = Graph(model)
    types = tensor_types(model)
    return [(rule.name, msg) for rule in RULES for msg in rule.check(g, types)]
