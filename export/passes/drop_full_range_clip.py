"""Drop integer Clips whose bounds are the container's full range (DESIGN §4: omitted then)."""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from export._graph import Graph
from export._qdq import full_range, int_clip
from export.passes.registry import register_pass

__all__ = ["DropFullRangeClip"]


@dataclass(frozen=True)
class DropFullRangeClip:
    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        graph = Graph(model)
        dropped = []
        for n in model.graph.node:
            b = int_clip(graph, n)
            if b is None or not full_range(*b) or n.output[0] in graph.outputs:
                continue
            graph.replace_uses(n.output[0], n.input[0])
            dropped.append(n)
        graph.remove_nodes(dropped)
        return model, bool(dropped)


register_pass("drop_full_range_clip", DropFullRangeClip, stage="graph")
