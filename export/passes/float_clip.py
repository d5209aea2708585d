"""The ``float_clip`` pattern: ``Clip(x, lo*s, hi*s) -> QuantizeLinear -> DequantizeLinear``.

Same codes as QCDQ (quantization is monotone), but the float Clip sits between a conv and its
QuantizeLinear; kept as a LoweringOptions choice because some toolchains want it, and measured to make ONNX
Runtime run such convs as float FusedConv (see ``export.inspect``).

``signed_only`` moves only the bounds of signed codes (the narrow range ``-n..n`` of residual operands and the
network input). OpenVINO folds that float bound into its FakeQuantize; the integer Clip in a QCDQ on a
residual operand instead kept the Add's dequantization out of the conv, which then wrote f32 and ran a
separate Multiply (measured on ResNet-18). Unsigned sub-8-bit codes keep their integer Clip there: as float
bounds OpenVINO's results drifted further from the spec (measured).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import onnx

from export._graph import INT_RANGES, Graph
from export._qdq import act_chains
from export.passes.registry import register_pass

__all__ = ["FloatClip"]


@dataclass(frozen=True)
class FloatClip:
    signed_only: bool = False

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        graph = Graph(model)
        changed = False
        for chain in act_chains(graph):
            if chain.clip is None or not chain.closed or (self.signed_only and chain.codes[0] >= 0):
                continue
            s = chain.params.scale.reshape(()).astype(np.float32)
            c_lo, c_hi = chain.codes
            t_lo, t_hi = INT_RANGES[chain.params.dtype]
            base = chain.q.name or "q"
            lo = graph.add_initializer(np.float32(c_lo) * s, f"{base}_float_lo") if chain.lo > t_lo else ""
            hi = graph.add_initializer(np.float32(c_hi) * s, f"{base}_float_hi") if chain.hi < t_hi else ""
            clipped = graph.unique(f"{chain.source}_clipped")
            clip = graph.make_node("Clip", [chain.source, lo, hi], [clipped], name=f"{base}_float_clip")
            graph.replace_uses(chain.clip.output[0], chain.q.output[0])
            graph.remove_nodes([chain.clip])
            chain.q.input[0] = clipped
            model.graph.node.append(clip)
            changed = True
        return model, changed


register_pass(
    "float_clip", partial(FloatClip, signed_only=False), stage="engine", excludes=("signed_float_clip",)
)
register_pass(
    "signed_float_clip", partial(FloatClip, signed_only=True), stage="engine", excludes=("float_clip",)
)
