"""Give each QuantizeLinear that reads a quantized Add its own copy of the Add.

Exact (the same sum, computed once per reader). ONNX Runtime fuses ``DQ, DQ -> Add -> Q`` into a QLinearAdd
only when the Add's one reader is that QuantizeLinear; in a mixed-precision ResNet every residual sum feeds
both the next block's a-bit conv quantizer and its 8-bit residual quantizer, so it ran as DequantizeLinear x2,
a float Add and two QuantizeLinear, with layout Transposes around them (measured on ResNet-18). Two
QLinearAdds on the uint8 codes cost less than that. OpenVINO runs the conv before such an Add with an f32
output and quantizes it twice; with one Add per quantizer the conv writes its int8 residual codes and each
Add becomes an integer eltwise with its own quantizer (measured faster).

The copy reads its operands in swapped order (``b + a``, bitwise the same sum): OpenVINO's
common-subexpression pass merges an identical copy back into one Add (measured).
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from export._graph import Graph, is_onnx_op
from export.passes._util import clone_per_reader, quantizer_readers
from export.passes.registry import register_pass

__all__ = ["SplitAddPerQuantizer"]


@dataclass(frozen=True)
class SplitAddPerQuantizer:
    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        graph = Graph(model)
        copies = []
        for add in model.graph.node:
            if not is_onnx_op(add, "Add") or len(add.input) != 2:
                continue
            dqs = [graph.producer.get(i) for i in add.input]
            if any(
                dq is None or dq.op_type != "DequantizeLinear" or graph.const(dq.input[0]) is not None
                for dq in dqs
            ):
                continue  # not a sum of two quantized activations
            readers = quantizer_readers(graph, add.output[0])
            copies += clone_per_reader(graph, add, readers, list(reversed(add.input)))
        model.graph.node.extend(copies)
        return model, bool(copies)


register_pass("split_add", SplitAddPerQuantizer, stage="engine")
