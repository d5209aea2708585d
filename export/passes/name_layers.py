"""Name each conv/linear node after its bpnas layer (DESIGN §4), so engine reports map back.

A node belongs to layer ``L`` when its weight input is (a DequantizeLinear/Transpose of) the initializer
``L.weight_codes`` (quantized weights) or ``L.weight`` (float weights), the names the exporter gives the
layer's buffers.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from export._graph import Graph

__all__ = ["NameLayers", "LAYER_OPS"]

LAYER_OPS = ("Conv", "Gemm", "MatMul", "ConvInteger", "MatMulInteger", "ConvTranspose")
_SUFFIXES = (".weight_codes", ".weight")


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
