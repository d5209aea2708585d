"""Run each quantized Conv/Gemm on its integer codes in float, then scale once by ``s_in * s_w``.

``DQ(x) -> Conv <- DQ(w), DQ(b)`` becomes ``Conv(x_codes - zp, w_codes) + b_codes`` in float, then one
``Mul`` by ``s_in * s_w`` per output channel: the same layer, but the accumulation adds integers, which
float32 does exactly while the partial sums stay below 2^24, so the layer's only roundings are that
product and the next quantizer's. For engines that run the QDQ graph in float (TVM's Relax frontend has no
ConvInteger or QLinearConv): there every product and partial sum of the dequantized operands rounds, and
near-tie codes flip against the spec (DESIGN §2). Measured on the parity test's worst case (resnet20,
random mixed config, 1,000 inputs vs the float64 spec): inputs whose logits move fall from 86 to 2 in
this arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from export._graph import ONNX_DOMAINS, Graph, attr
from export.passes._util import LayerOperands, acc_scale, layer_operands, plain_gemm
from export.passes.registry import register_pass

__all__ = ["CodeArithmetic"]


def _float_codes(
    graph: Graph, node: onnx.NodeProto, codes: str, one: str, zero_point: str | None, what: str
) -> str:
    """``DequantizeLinear(codes, one, zero_point)``: integer codes, zero point removed, as float. Weights stay
    int8 initializers behind it (engines fold it; the artifact keeps saying what precision they deploy at)."""
    inputs = [codes, one] + ([zero_point] if zero_point else [])
    out = graph.unique(f"{node.name}_{what}_codes")
    graph.g.node.append(graph.make_node("DequantizeLinear", inputs, [out], name=f"{node.name}/{what}_codes"))
    return out


def _rewrite(graph: Graph, node: onnx.NodeProto, ops: LayerOperands) -> bool:
    if node.op_type == "Gemm":
        if not plain_gemm(node, ops):
            return False
        channels = ops.w_codes.shape[0] if attr(node, "transB", 0) else ops.w_codes.shape[1]
        scale_shape: tuple[int, ...] = (channels,)
    else:
        channels = ops.w_codes.shape[0]
        scale_shape = (1, channels) + (1,) * (ops.w_codes.ndim - 2)
    w_codes = graph.add_initializer(ops.w_codes, f"{node.name}.weight_codes")
    one = graph.add_initializer(np.array(1.0, np.float32), f"{node.name}.unit_scale")
    inputs = [
        _float_codes(graph, node, ops.x_codes, one, ops.x_zp, "x"),
        _float_codes(graph, node, w_codes, one, None, "weight"),
    ]
    if ops.b_codes is not None:
        inputs.append(graph.add_initializer(ops.b_codes.astype(np.float32), f"{node.name}.bias_codes_f"))
    acc = graph.unique(f"{node.name}_acc")
    out = node.output[0]
    del node.input[:]
    node.input.extend(inputs)
    node.output[0] = acc
    scale = acc_scale(ops.x_params, ops.w_params, channels).reshape(scale_shape)
    s = graph.add_initializer(np.ascontiguousarray(scale), f"{node.name}.acc_scale")
    graph.g.node.append(graph.make_node("Mul", [acc, s], [out], name=f"{node.name}/scale"))
    return True


@dataclass(frozen=True)
class CodeArithmetic:
    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        graph = Graph(model)
        changed = False
        for node in list(model.graph.node):
            if node.op_type not in ("Conv", "Gemm") or node.domain not in ONNX_DOMAINS:
                continue
            ops = layer_operands(graph, node)
            if ops is not None and _rewrite(graph, node, ops):
                changed = True
                graph.reindex()
        return model, changed


register_pass("code_arithmetic", CodeArithmetic, stage="engine", excludes=("integer_ops",))
