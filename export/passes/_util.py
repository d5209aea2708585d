"""Graph queries more than one lowering pass needs, so no pass imports a sibling pass."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from export._graph import Graph, attr
from export._qdq import QuantParams, quant_params
from runtimes.integer.packing import bias_scale

__all__ = [
    "LayerOperands",
    "acc_scale",
    "clone_per_reader",
    "layer_operands",
    "plain_gemm",
    "quantizer_readers",
    "weight_source",
]


@dataclass(frozen=True)
class LayerOperands:
    """A quantized Conv/Gemm's integer operands: activation, weight and bias codes and their scales."""

    x_codes: str
    x_zp: str | None
    x_params: QuantParams
    w_codes: np.ndarray  # int8
    w_params: QuantParams
    b_codes: np.ndarray | None  # int32


def layer_operands(graph: Graph, node: onnx.NodeProto) -> LayerOperands | None:
    """The integer operands of a quantized Conv/Gemm (per-tensor activation codes, int8 weight codes with zero
    point 0, optional int32 bias codes on the accumulator grid), or None when it is not one."""
    dqs = [graph.producer.get(i) if i else None for i in node.input[:3]]
    x_dq, w_dq = dqs[0], dqs[1]
    if (
        x_dq is None
        or w_dq is None
        or x_dq.op_type != "DequantizeLinear"
        or w_dq.op_type != "DequantizeLinear"
    ):
        return None
    xp, wp = quant_params(graph, x_dq), quant_params(graph, w_dq)
    w = graph.const(w_dq.input[0])
    if xp is None or wp is None or w is None or not xp.per_tensor:
        return None
    if w.dtype != np.int8 or np.any(wp.zero_point != 0) or (not wp.per_tensor and wp.axis != 0):
        return None
    b = None
    if len(node.input) > 2 and node.input[2]:
        b_dq = dqs[2]
        if b_dq is None or b_dq.op_type != "DequantizeLinear":
            return None
        bp = quant_params(graph, b_dq)
        b = graph.const(b_dq.input[0])
        if bp is None or b is None or b.dtype != np.int32 or np.any(bp.zero_point != 0):
            return None
        channels = w.shape[1] if node.op_type == "Gemm" and not attr(node, "transB", 0) else w.shape[0]
        if not np.array_equal(np.broadcast_to(bp.scale, (channels,)), acc_scale(xp, wp, channels)):
            return None
    zp = x_dq.input[2] if len(x_dq.input) > 2 and x_dq.input[2] else None
    return LayerOperands(x_dq.input[0], zp, xp, w, wp, b)


def acc_scale(xp: QuantParams, wp: QuantParams, channels: int) -> np.ndarray:
    """s_in * s_w per output channel, float32 (the product ORT and the fake-quant model both compute; the
    same ``bias_scale`` the integer artifact's loader recomputes)."""
    return np.broadcast_to(bias_scale(xp.scale.reshape(()), wp.scale.reshape(-1)), (channels,)).copy()


def plain_gemm(node: onnx.NodeProto, ops: LayerOperands) -> bool:
    """A Gemm an integer rewrite can take: ``A @ B + C`` (no transA, unit alpha/beta), 2-D weights whose
    per-channel scales run along the output features."""
    if attr(node, "transA", 0) or attr(node, "alpha", 1.0) != 1.0 or attr(node, "beta", 1.0) != 1.0:
        return False
    return ops.w_codes.ndim == 2 and (ops.w_params.per_tensor or bool(attr(node, "transB", 0)))


def quantizer_readers(graph: Graph, tensor: str) -> list[onnx.NodeProto]:
    """The readers of ``tensor`` when there are two or more and all are QuantizeLinear, else []."""
    readers = graph.consumers.get(tensor, [])
    if (
        len(readers) < 2
        or tensor in graph.outputs
        or any(r.op_type != "QuantizeLinear" or r.input[0] != tensor for r in readers)
    ):
        return []
    return list(readers)


def clone_per_reader(
    graph: Graph, node: onnx.NodeProto, readers: list[onnx.NodeProto], inputs: list[str]
) -> list[onnx.NodeProto]:
    """Copies of ``node`` (reading ``inputs``) for ``readers[1:]``, each rewired to read its own copy."""
    copies = []
    for q in readers[1:]:
        copy = graph.make_node(
            node.op_type, inputs, name=f"{node.name or node.op_type.lower()}/for_{q.name or 'q'}"
        )
        copy.attribute.extend(node.attribute)
        q.input[0] = copy.output[0]
        copies.append(copy)
    return copies


def weight_source(graph: Graph, node: onnx.NodeProto) -> str | None:
    """The initializer a layer node's weight input comes from, through DequantizeLinear/Transpose/Reshape."""
    if len(node.input) < 2:
        return None
    name = node.input[1]
    for _ in range(4):
        if name in graph.init:
            return name
        p = graph.producer.get(name)
        if p is None or p.op_type not in ("DequantizeLinear", "Transpose", "Reshape", "Cast"):
            return None
        name = p.input[0]
    return None
