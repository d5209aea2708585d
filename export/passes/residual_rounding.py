"""Keep OpenVINO from dropping the rounding of a residual operand's quantizer (``keep_residual_rounding``).

OpenVINO's CPU plugin (2026.4) fuses ``Conv -> FakeQuantize -> Add(other) -> FakeQuantize`` into one conv
with post-ops, and when that FakeQuantize is the conv's first post-op and a sum and another FakeQuantize
follow it, builds it without its rounding (intel_cpu's conv post-ops: "drop rounding one special residual
pattern"). The residual operand enters the sum unrounded, off the spec by up to half a code: measured on a
detector, 1.8% of the next 4-bit codes flipped per residual block and 89% of the head's codes moved
(``examples/openvino_fq_repro.py`` reproduces it on one block).

A ``LeakyRelu(alpha=1)`` between such a conv and its quantizer is the identity (``1.0 * x == x`` in float),
so the graph computes the same, but the plugin fuses it as the conv's first post-op: the quantizer comes
second and keeps its rounding, and the conv still fuses the sum and the next quantizer (no extra node at run
time, int8 output). The pass inserts it only where the plugin builds that fusion: the conv's quantized
output is read by the Add alone (else the sum is not merged into the conv) and the sum has one reader (else
it is not quantized inside the conv). A mixed-precision ResNet's sums, read by two quantizers and split per
reader by ``split_add``, are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from export._graph import Graph, is_onnx_op
from export.passes.registry import register_pass

__all__ = ["KeepResidualRounding"]

_CONVS = ("Conv",)  # OpenVINO merges sums into Convolution nodes only (not Deconvolution)


def _conv_reader(graph: Graph, dq_out: str) -> onnx.NodeProto | None:
    """When ``dq_out`` is ``DQ([Clip](Q([Clip...](conv))))``, each tensor of it read once (so OpenVINO fuses
    the quantizer into the conv and the conv's one reader is what reads ``dq_out``), the chain's first node,
    which reads the conv; else None."""
    dq = graph.producer.get(dq_out)
    if dq is None or dq.op_type != "DequantizeLinear" or graph.const(dq.input[0]) is not None:
        return None
    node = graph.producer.get(dq.input[0])
    if node is not None and is_onnx_op(node, "Clip") and graph.uses(node.output[0]) == 1:  # integer clip
        node = graph.producer.get(node.input[0])
    if node is None or node.op_type != "QuantizeLinear" or graph.uses(node.output[0]) != 1:
        return None
    reader = node
    src = graph.producer.get(node.input[0])
    while src is not None and is_onnx_op(src, "Clip") and graph.uses(reader.input[0]) == 1:  # float clips
        reader, src = src, graph.producer.get(src.input[0])
    if src is None or not is_onnx_op(src, *_CONVS) or graph.uses(reader.input[0]) != 1:
        return None
    return reader


@dataclass(frozen=True)
class KeepResidualRounding:
    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        graph = Graph(model)
        new = []
        for add in model.graph.node:
            if not is_onnx_op(add, "Add") or len(add.input) != 2 or graph.uses(add.output[0]) != 1:
                continue  # a sum read twice is not quantized inside the conv: the rounding stays
            for operand in add.input:
                reader = _conv_reader(graph, operand) if graph.uses(operand) == 1 else None
                if reader is None:
                    continue
                conv_out = reader.input[0]
                out = graph.unique(f"{conv_out}_first_post_op")
                new.append(
                    graph.make_node("LeakyRelu", [conv_out], [out], name=f"{conv_out}/identity", alpha=1.0)
                )
                reader.input[0] = out
                graph.producer[out] = new[-1]  # a second Add reading the same chain sees it done
        model.graph.node.extend(new)
        return model, bool(new)


register_pass(
    "keep_residual_rounding", KeepResidualRounding, stage="engine", after=("split_add", "signed_float_clip")
)
