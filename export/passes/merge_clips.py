"""Merge two integer Clips in a row (``Clip -> Clip``) into one with the tighter bounds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from export._graph import Graph, np_dtype
from export._qdq import int_clip
from export.passes.registry import register_pass

__all__ = ["MergeClips"]


@dataclass(frozen=True)
class MergeClips:
    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        graph = Graph(model)
        changed = False
        while self._merge_one(graph):
            graph.reindex()
            changed = True
        return model, changed

    @staticmethod
    def _merge_one(graph: Graph) -> bool:
        for second in graph.g.node:
            b2 = int_clip(graph, second)
            first = graph.producer.get(second.input[0]) if b2 else None
            b1 = int_clip(graph, first) if first is not None else None
            if b1 is None or b2 is None or b1[0] != b2[0] or graph.uses(first.output[0]) != 1:  # type: ignore[union-attr]
                continue
            lo, hi = max(b1[1], b2[1]), min(b1[2], b2[2])
            if lo > hi:
                continue
            dt = np_dtype(b1[0])
            assert first is not None
            second.input[0] = first.input[0]
            second.input[1] = graph.add_initializer(np.array(lo, dt), f"{second.name or 'clip'}_lo")
            second.input[2] = graph.add_initializer(np.array(hi, dt), f"{second.name or 'clip'}_hi")
            graph.remove_nodes([first])
            return True
        return False


register_pass("merge_clips", MergeClips, stage="graph")
