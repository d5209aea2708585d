"""Fold a constant ``DequantizeLinear`` of int32 codes (a layer's bias) into its float32 value.

TensorRT's DequantizeLinear takes INT8/FP8/INT4 inputs only (onnx-tensorrt ``docs/operators.md``); the
int32 bias DQ the QDQ artifact carries (DESIGN §4) stops its parser. The float bias is computed as ONNX
defines DequantizeLinear, ``float32(codes - zero_point) * scale`` in float32, so every engine adds the same
numbers it added before. Weight DQs (int8) stay: TensorRT needs them to pick int8 kernels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto

from export._graph import Graph, attr
from export._qdq import quant_params
from export.passes.registry import register_pass

__all__ = ["FloatBias", "dequantize_const"]

#: integer types a constant DQ may keep (what TensorRT dequantizes); others are folded to float
_KEEP = (TensorProto.INT8,)


def dequantize_const(codes: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int) -> np.ndarray:
    """ONNX DequantizeLinear of constant codes, bit for bit: float32(codes - zp) * scale in float32."""
    shape = [1] * codes.ndim
    if scale.size > 1:
        shape[axis] = -1
    diff = codes.astype(np.int64) - zero_point.astype(np.int64).reshape(shape)
    return diff.astype(np.float32) * scale.astype(np.float32).reshape(shape)


@dataclass(frozen=True)
class FloatBias:
    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        graph = Graph(model)
        changed = False
        for dq in list(model.graph.node):
            if dq.op_type != "DequantizeLinear" or dq.output[0] in graph.outputs:
                continue
            codes = graph.const(dq.input[0])
            params = quant_params(graph, dq)
            if codes is None or params is None or graph.const_type(dq.input[0]) in _KEEP:
                continue
            axis = int(attr(dq, "axis", 1)) % max(codes.ndim, 1)
            value = dequantize_const(codes, params.scale, params.zero_point, axis)
            name = graph.add_initializer(value, dq.input[0].removesuffix("_codes"))
            graph.replace_uses(dq.output[0], name)
            graph.remove_nodes([dq])
            changed = True
        return model, changed


register_pass("float_bias", FloatBias, stage="engine")
