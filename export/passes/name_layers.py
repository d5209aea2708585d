"""Name each conv/linear node after its bpnas layer (DESIGN §4), so engine reports map back.

A node belongs to layer ``L`` when its weight input is (a DequantizeLinear/Transpose of) the initializer
``L.weight_codes`` (quantized weights) or ``L.weight`` (float weights), the names the exporter gives the
layer's buffers.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from export._graph import Graph
from export.passes._util import weight_source

__all__ = ["NameLayers", "LAYER_OPS"]

LAYER_OPS = ("Conv", "Gemm", "MatMul", "ConvInteger", "MatMulInteger", "ConvTranspose")
_SUFFIXES = (".weight_codes", ".weight")


@dataclass(frozen=True)
class NameLayers:
    layers: tuple[str, ...]

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        graph = Graph(model)
        known = set(self.layers)
        taken = {n.name for n in model.graph.node}
        changed = False
        for node in model.graph.node:
            if node.op_type not in LAYER_OPS or node.name in known:
                continue
            src = weight_source(graph, node)
            layer = next((src[: -len(s)] for s in _SUFFIXES if src and src.endswith(s)), None)
            if layer is None or layer not in known or layer in taken:
                continue
            node.name = layer
            taken.add(layer)
            changed = True
        return model, changed
