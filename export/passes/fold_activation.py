"""Fold a float Relu/Clip that feeds a QuantizeLinear into an integer Clip after it.

Quantization is monotone, so ``Q(clip(x, lo, hi)) == clip(Q(x), Q(lo), Q(hi))`` exactly. Moving the bound
behind the QuantizeLinear leaves the conv directly followed by its QuantizeLinear, which is what ONNX
Runtime needs to fuse QLinearConv (a float Clip(0, 6) of ReLU6 in between makes it run a float FusedConv).
Readers of the Relu/Clip that are not QuantizeLinear keep it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto

from export._graph import INT_RANGES, Graph, is_onnx_op, np_dtype
from export._qdq import clip_bounds, quant_params, quantize_value
from export.passes.registry import register_pass

__all__ = ["FoldActivationIntoQuantize"]


def _float_bounds(graph: Graph, node: onnx.NodeProto) -> tuple[float | None, float | None] | None:
    if node.op_type == "Clip":
        for k in (1, 2):
            if len(node.input) > k and node.input[k] and graph.const_type(node.input[k]) != TensorProto.FLOAT:
                return None
    return clip_bounds(graph, node)


@dataclass(frozen=True)
class FoldActivationIntoQuantize:
    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        graph = Graph(model)
        changed = False
        new_nodes = []
        for act in list(model.graph.node):
            if not is_onnx_op(act, "Relu", "Clip"):
                continue
            bounds = _float_bounds(graph, act)
            if bounds is None or graph.const(act.input[0]) is not None:
                continue
            for q in list(graph.consumers.get(act.output[0], [])):
                params = quant_params(graph, q) if q.op_type == "QuantizeLinear" else None
                if (
                    params is None
                    or not params.per_tensor
                    or params.dtype not in (TensorProto.UINT8, TensorProto.INT8)
                ):
                    continue
                lo_t, hi_t = INT_RANGES[params.dtype]
                qlo = quantize_value(bounds[0], params) if bounds[0] is not None else lo_t
                qhi = quantize_value(bounds[1], params) if bounds[1] is not None else hi_t
                q.input[0] = act.input[0]
                if (qlo, qhi) != (lo_t, hi_t):
                    dt = np_dtype(params.dtype)
                    lo = graph.add_initializer(np.array(qlo, dt), f"{q.name or 'q'}_lo")
                    hi = graph.add_initializer(np.array(qhi, dt), f"{q.name or 'q'}_hi")
                    mid = graph.unique(f"{q.output[0]}_unclipped")
                    clip = graph.make_node("Clip", [mid, lo, hi], [q.output[0]], name=f"{q.name or 'q'}_clip")
                    q.output[0] = mid
                    new_nodes.append(clip)
                changed = True
        model.graph.node.extend(new_nodes)
        return model, changed


register_pass("fold_activation", FoldActivationIntoQuantize, stage="graph")
