"""Quantize before a MaxPool whose only reader is a QuantizeLinear: ``Q -> [Clip] -> DQ -> MaxPool -> Q``.

Exact: ``DQ(Q(.))`` and the Clip are monotone, so they commute with max, and re-quantizing an on-grid value
with the same scale gives its code back; the Clip after the MaxPool then has nothing left to clip and goes.
The conv in front of the MaxPool (a ResNet stem) gets its own QuantizeLinear, so OpenVINO fuses it into the
conv and pools u8 codes, instead of running the conv output, the MaxPool and a FakeQuantize in f32
(measured on ResNet-18). The same DQ -> MaxPool -> Q form is what ONNX Runtime's own quantizer writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from export._graph import Graph, is_onnx_op
from export._qdq import act_chains
from export.passes.registry import register_pass

__all__ = ["QuantizeBeforeMaxPool"]


@dataclass(frozen=True)
class QuantizeBeforeMaxPool:
    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        graph = Graph(model)
        changed = False
        for chain in act_chains(graph):
            pool = graph.producer.get(chain.source)
            if (
                pool is None
                or not is_onnx_op(pool, "MaxPool")
                or any(o for o in pool.output[1:])  # the Indices output is read
                or not chain.closed
                or not chain.dqs
                or chain.source in graph.outputs
                or len(graph.consumers.get(chain.source, [])) != 1  # the chain's Q is the only reader
            ):
                continue
            before = graph.producer.get(pool.input[0])
            if graph.const(pool.input[0]) is not None or (before and before.op_type == "DequantizeLinear"):
                continue  # a constant, or already pooling codes
            base = f"{pool.name or 'maxpool'}/input"
            codes = graph.unique(f"{base}_quantize_out")
            q = graph.make_node(
                "QuantizeLinear", [pool.input[0], *chain.q.input[1:]], [codes], name=f"{base}_q"
            )
            q.attribute.extend(chain.q.attribute)
            nodes = [q]
            if chain.clip is not None:
                clipped = graph.unique(f"{base}_clip_out")
                nodes.append(
                    graph.make_node("Clip", [codes, *chain.clip.input[1:]], [clipped], name=f"{base}_clip")
                )
                codes = clipped
                graph.replace_uses(chain.clip.output[0], chain.q.output[0])
                graph.remove_nodes([chain.clip])
            pooled = graph.unique(f"{base}_dequantize_out")
            dq = graph.make_node(
                "DequantizeLinear", [codes, *chain.dqs[0].input[1:]], [pooled], name=f"{base}_dq"
            )
            dq.attribute.extend(chain.dqs[0].attribute)
            nodes.append(dq)
            pool.input[0] = pooled
            model.graph.node.extend(nodes)
            changed = True
        return model, changed


register_pass("quantize_before_maxpool", QuantizeBeforeMaxPool, stage="graph", after=("split_maxpool",))
