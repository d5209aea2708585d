"""Lower quantized layers ONNX Runtime cannot fuse to explicit integer ops (ConvInteger / MatMulInteger).

ORT fuses ``DQ -> Conv -> Q`` into QLinearConv only when the conv's single reader is one QuantizeLinear of
the input's type (and ``DQ -> Gemm [-> Q]`` into QGemm likewise); a conv feeding two quantizers (a residual
block's input) or a pooling layer runs as a float Conv on dequantized tensors. Such a layer becomes
``ConvInteger(x_codes, w_codes) + bias_codes`` in int32 followed by one ``DequantizeLinear`` with scale
``s_in * s_w`` on the channel axis: the same integer accumulation, bit-exact up to float32 rounding of the
final product, on ORT's integer kernels. Handlers are looked up by op type; other ops are left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto

from export._graph import ONNX_DOMAINS, Graph, attr
from export._qdq import quant_params
from export.passes._util import LayerOperands, acc_scale, layer_operands, plain_gemm
from export.passes.registry import register_pass

__all__ = ["IntegerOps", "ort_fusable"]


def ort_fusable(graph: Graph, node: onnx.NodeProto, x_dtype: int) -> bool:
    """Whether ORT's QDQ selector takes this Conv/Gemm (mirrors its Conv/GemmNodeGroupSelector)."""
    out = node.output[0]
    readers = graph.consumers.get(out, [])
    qs = [r for r in readers if r.op_type == "QuantizeLinear"]
    if node.op_type == "Gemm" and not qs:
        return True  # QGemm with a float output
    if out in graph.outputs or len(readers) != 1 or len(qs) != 1:
        return False
    p = quant_params(graph, qs[0])
    return p is not None and p.dtype == x_dtype


def _epilogue(
    graph: Graph, node: onnx.NodeProto, acc: str, ops: LayerOperands, bias_shape: tuple[int, ...]
) -> list:
    """``acc (+ bias codes) -> DequantizeLinear(s_in * s_w, axis=1)`` writing the node's original output."""
    nodes = []
    channels = ops.w_codes.shape[0] if node.op_type == "Conv" else bias_shape[-1]
    if ops.b_codes is not None:
        b = graph.add_initializer(ops.b_codes.reshape(bias_shape).astype(np.int32), f"{node.name}.bias_codes")
        summed = graph.unique(f"{node.name}_acc_bias")
        nodes.append(graph.make_node("Add", [acc, b], [summed], name=f"{node.name}/bias"))
        acc = summed
    scale = graph.add_initializer(acc_scale(ops.x_params, ops.w_params, channels), f"{node.name}.acc_scale")
    nodes.append(
        graph.make_node("DequantizeLinear", [acc, scale], [node.output[0]], name=f"{node.name}/dq", axis=1)
    )
    return nodes


def _zero_points(graph: Graph, node: onnx.NodeProto, ops: LayerOperands) -> tuple[str, str]:
    x_zp = ops.x_zp or graph.add_initializer(np.array(0, np.uint8), f"{node.name}.x_zero_point")
    w_zp = graph.add_initializer(np.array(0, np.int8), f"{node.name}.w_zero_point")
    return x_zp, w_zp


def _conv(graph: Graph, node: onnx.NodeProto, ops: LayerOperands) -> list:
    x_zp, w_zp = _zero_points(graph, node, ops)
    w = graph.add_initializer(ops.w_codes, f"{node.name}.weight_codes")
    acc = graph.unique(f"{node.name}_acc")
    keep = {a.name: a for a in node.attribute}
    conv = onnx.helper.make_node("ConvInteger", [ops.x_codes, w, x_zp, w_zp], [acc], name=node.name)
    conv.attribute.extend(keep.values())
    return [conv, *_epilogue(graph, node, acc, ops, (1, ops.w_codes.shape[0], 1, 1))]


def _gemm(graph: Graph, node: onnx.NodeProto, ops: LayerOperands) -> list | None:
    if not plain_gemm(node, ops):
        return None
    wt = ops.w_codes.T if attr(node, "transB", 0) else ops.w_codes  # (K, M)
    x_zp, w_zp = _zero_points(graph, node, ops)
    w = graph.add_initializer(np.ascontiguousarray(wt), f"{node.name}.weight_codes_t")
    acc = graph.unique(f"{node.name}_acc")
    mm = onnx.helper.make_node("MatMulInteger", [ops.x_codes, w, x_zp, w_zp], [acc], name=node.name)
    return [mm, *_epilogue(graph, node, acc, ops, (wt.shape[1],))]


_HANDLERS: dict[str, Callable[[Graph, onnx.NodeProto, LayerOperands], list | None]] = {
    "Conv": _conv,
    "Gemm": _gemm,
}


@dataclass(frozen=True)
class IntegerOps:
    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        graph = Graph(model)
        changed = False
        for node in list(model.graph.node):
            handler = _HANDLERS.get(node.op_type)
            if handler is None or node.domain not in ONNX_DOMAINS:
                continue  # fallback: not a layer type ORT has an integer kernel for; left as is
            ops = layer_operands(graph, node)
            if ops is None or ops.x_params.dtype != TensorProto.UINT8:  # ConvInteger takes uint8 codes
                continue
            if ort_fusable(graph, node, ops.x_params.dtype):
                continue
            new = handler(graph, node, ops)
            if new is None:
                continue
            graph.remove_nodes([node])
            model.graph.node.extend(new)
            changed = True
        return model, changed


# ConvInteger takes uint8 inputs
register_pass(
    "integer_ops", IntegerOps, stage="engine", requires=("uint8_activations",), excludes=("code_arithmetic",)
)
