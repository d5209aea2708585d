"""Rewrite a strided 1x1 conv as an integer Slice (every s-th pixel) followed by a stride-1 1x1 conv.

Exact (a 1x1 conv without padding only reads the pixels the stride picks). OpenVINO 2026.4 runs strided
1x1 convolutions on QDQ inputs in f32 (measured: every ResNet downsample shortcut), and the stride-1 form
as u8. The Slice acts on the quantized codes, so DequantizeLinear stays right before the conv.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from export._graph import Graph, attr
from export.passes._util import weight_source
from export.passes.registry import register_pass

__all__ = ["SliceStridedPointwise"]

_END = np.iinfo(np.int64).max


def _kernel(graph: Graph, conv: onnx.NodeProto) -> list[int]:
    shape = attr(conv, "kernel_shape")
    if shape is not None:
        return list(shape)
    src = weight_source(graph, conv)
    t = graph.init.get(src) if src else None
    return list(t.dims[2:]) if t is not None else []


@dataclass(frozen=True)
class SliceStridedPointwise:
    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        graph = Graph(model)
        changed = False
        for conv in list(model.graph.node):
            if conv.op_type != "Conv" or _kernel(graph, conv) != [1, 1]:
                continue
            strides = list(attr(conv, "strides", [1, 1]))
            if (
                strides == [1, 1]
                or any(attr(conv, "pads", [0, 0, 0, 0]))
                or attr(conv, "auto_pad", b"NOTSET")
                not in (
                    b"NOTSET",
                    "NOTSET",
                )
            ):
                continue
            dq = graph.producer.get(conv.input[0])
            if dq is None or dq.op_type != "DequantizeLinear" or graph.const(dq.input[0]) is not None:
                continue
            base = conv.name or "conv"
            consts = [
                graph.add_initializer(np.array(v, np.int64), f"{base}.subsample_{k}")
                for k, v in (("starts", [0, 0]), ("ends", [_END, _END]), ("axes", [2, 3]), ("steps", strides))
            ]
            sliced = graph.unique(f"{base}_subsampled_codes")
            new_dq_out = graph.unique(f"{base}_subsampled")
            model.graph.node.extend(
                [
                    graph.make_node("Slice", [dq.input[0], *consts], [sliced], name=f"{base}/subsample"),
                    graph.make_node(
                        "DequantizeLinear", [sliced, *dq.input[1:]], [new_dq_out], name=f"{base}/input_dq"
                    ),
                ]
            )
            conv.input[0] = new_dq_out
            for a in conv.attribute:
                if a.name == "strides":
                    a.ints[:] = [1, 1]
            changed = True
        return model, changed


# after the float clips, which must see the QCDQ closed before a Slice reads the codes
register_pass(
    "slice_strided_pointwise",
    SliceStridedPointwise,
    stage="engine",
    after=("float_clip", "signed_float_clip"),
)
