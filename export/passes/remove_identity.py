"""Remove Identity and Dropout nodes, and BatchNormalization nodes that compute the identity.

BN layers that followed a conv are folded before export (DESIGN §2); what the exporter may still emit
are Identity/Dropout leftovers and identity-valued BNs. Other BNs stay float.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from export._graph import Graph, attr

__all__ = ["RemoveIdentity"]


def _bn_is_identity(graph: Graph, node: onnx.NodeProto) -> bool:
    vals = [graph.const(i) for i in node.input[1:5]]
    if any(v is None for v in vals) or len(node.output) != 1:
        return False
    scale, bias, mean, var = (np.asarray(v, np.float32) for v in vals)  # type: ignore[arg-type]
    eps = np.float32(attr(node, "epsilon", 1e-5))
    mult = scale / np.sqrt(var + eps)
    return bool(np.all(mult == 1) and np.all(bias - mean * mult == 0))


@dataclass(frozen=True)
class RemoveIdentity:
    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        graph = Graph(model)
        removed = []
        for n in list(model.graph.node):
            dropout = n.op_type == "Dropout" and not (len(n.output) > 1 and n.output[1])
            bn = n.op_type == "BatchNormalization" and _bn_is_identity(graph, n)
            if not (n.op_type == "Identity" or dropout or bn):
                continue
            src, out = n.input[0], n.output[0]
            if out in graph.outputs:
                if src in graph.outputs or src not in graph.producer or graph.uses(src) != 1:
                    continue
                # the identity produces a graph output: let the producer write it directly
                graph.producer[src].output[list(graph.producer[src].output).index(src)] = out
            else:
                graph.replace_uses(out, src)
            removed.append(n)
            graph.remove_nodes([n])
            graph.reindex()
        return model, bool(removed)
