"""Merge identical QuantizeLinear / Clip / DequantizeLinear nodes that read the same tensor.

Two quantizers with equal parameters on one tensor (e.g. after folding a Relu into both of its readers)
become one QCDQ, so engines see a single quantized tensor with several readers.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from export._graph import Graph, is_onnx_op
from export.passes.registry import register_pass

__all__ = ["DedupeQuantizers"]

_OPS = ("QuantizeLinear", "DequantizeLinear", "Clip")


def _input_key(graph: Graph, name: str) -> object:
    t = graph.init.get(name)
    if t is None:
        return ("tensor", name)
    v = graph.const(name)
    assert v is not None
    return ("const", int(t.data_type), v.shape, v.tobytes())


@dataclass(frozen=True)
class DedupeQuantizers:
    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        graph = Graph(model)
        seen: dict[object, onnx.NodeProto] = {}
        dupes = []
        for n in model.graph.node:  # topological order: merging a Q lets its Clips/DQs merge in this sweep
            if not is_onnx_op(n, *_OPS) or len(n.output) != 1:
                continue
            if graph.const(n.input[0]) is not None:
                continue  # weights: one DQ per layer is what engines expect
            key = (
                n.op_type,
                tuple(_input_key(graph, i) for i in n.input),
                tuple(sorted(a.SerializeToString() for a in n.attribute)),
            )
            first = seen.get(key)
            if first is None:
                seen[key] = n
                continue
            if n.output[0] in graph.outputs:
                continue
            graph.replace_uses(n.output[0], first.output[0])
            dupes.append(n)
        graph.remove_nodes(dupes)
        return model, bool(dupes)


register_pass("dedupe_quantizers", DedupeQuantizers, stage="graph")
