"""Keep OpenVINO from fusing a residual Add into the conv whose quantized output it reads.

OpenVINO's CPU plugin (2026.4) fuses ``Conv -> FakeQuantize -> Add(other) -> FakeQuantize`` into one conv
with a sum post-op, and in exactly that pattern builds the first FakeQuantize without its rounding ("drop
rounding one special residual pattern", intel_cpu's conv post-ops): the residual operand enters the sum
unrounded, off the spec by up to half a code (measured: 100% of one detector's mismatching codes explained,
1.8% of the next 4-bit codes flipped per residual block, and from there 89% of the head's codes). A MaxPool
with a 1x1 window between each such operand's DequantizeLinear and the Add is the identity, so the graph
computes the same, but the Add no longer has a Convolution parent: the conv keeps its quantizer (rounded, last
post-op, int8 output), the pooling runs on those int8 codes and the Add becomes an integer eltwise with the
next quantizer fused into it. ``examples/openvino_fq_repro.py`` reproduces the engine's behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from export._graph import Graph, attr, is_onnx_op
from export.passes._util import weight_source
from export.passes.registry import register_pass

__all__ = ["UnfusedResidualAdd"]

_FUSES_INTO_CONV = ("Conv", "ConvTranspose")


def _quantized_conv(graph: Graph, dq_out: str) -> onnx.NodeProto | None:
    """The conv when ``dq_out`` is ``DQ([Clip](Q([Clip...](conv))))`` and only that chain reads the conv's
    output (so OpenVINO fuses the quantizer into the conv, which becomes the Add's parent); else None."""
    dq = graph.producer.get(dq_out)
    if dq is None or dq.op_type != "DequantizeLinear" or graph.const(dq.input[0]) is not None:
        return None
    node = graph.producer.get(dq.input[0])
    if node is not None and is_onnx_op(node, "Clip"):  # the integer clip of a QCDQ chain
        node = graph.producer.get(node.input[0])
    if node is None or node.op_type != "QuantizeLinear":
        return None
    src = node.input[0]
    node = graph.producer.get(src)
    while node is not None and is_onnx_op(node, "Clip") and graph.uses(src) == 1:  # folds into the Q
        src = node.input[0]
        node = graph.producer.get(src)
    if node is None or not is_onnx_op(node, *_FUSES_INTO_CONV) or graph.uses(src) != 1:
        return None
    return node


def _spatial_rank(graph: Graph, conv: onnx.NodeProto) -> int | None:
    shape = attr(conv, "kernel_shape")
    if shape is not None:
        return len(shape)
    src = weight_source(graph, conv)
    t = graph.init.get(src) if src else None
    return len(t.dims) - 2 if t is not None and len(t.dims) > 2 else None


@dataclass(frozen=True)
class UnfusedResidualAdd:
    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        graph = Graph(model)
        pooled: dict[str, str] = {}
        new = []
        for add in model.graph.node:
            if not is_onnx_op(add, "Add") or len(add.input) != 2:
                continue
            for k, operand in enumerate(add.input):
                if operand not in pooled:
                    conv = _quantized_conv(graph, operand)
                    rank = _spatial_rank(graph, conv) if conv is not None else None
                    if rank is None:
                        continue
                    out = graph.unique(f"{operand}_unfused")
                    name = f"{add.name or 'add'}/unfuse"
                    window = [1] * rank
                    new.append(graph.make_node("MaxPool", [operand], [out], name=name, kernel_shape=window))
                    pooled[operand] = out
                add.input[k] = pooled[operand]
        model.graph.node.extend(new)
        return model, bool(new)


register_pass(
    "unfused_residual_add", UnfusedResidualAdd, stage="engine", after=("split_add", "signed_float_clip")
)
