"""QDQ -> QONNX: every QCDQ chain becomes one ``Quant`` node (domain ``qonnx.custom_op.general``).

``Quant(x, scale, zeropt, bitwidth; signed, narrow, rounding_mode="ROUND")`` computes
``(round(clip(x / scale + zeropt, min, max)) - zeropt) * scale`` with numpy's round, which rounds half to
even: exactly the fake-quant spec (clamp, round half to even, division not multiplication). Activations:
unsigned codes ``[0, 2^b - 1]`` -> signed=0, narrow=0; signed narrow ``±(2^(b-1) - 1)`` -> signed=1,
narrow=1. Weights: the float initializer ``codes * s_w`` under a Quant with the layer's w bits (signed,
narrow, per-channel scale shaped to broadcast on axis 0), so FINN-style tools read the integer weights back.
Biases stay float at their dequantized (int32-grid) value, the value the fake-quant model adds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from export._graph import Graph
from export._qdq import ActChain, act_chains, quant_params

__all__ = ["QdqToQuant", "QONNX_DOMAIN", "quant_attrs"]

QONNX_DOMAIN = "qonnx.custom_op.general"


def quant_attrs(lo: int, hi: int) -> tuple[int, int, int] | None:
    """(bitwidth, signed, narrow) whose QONNX range is exactly the code range ``[lo, hi]``, else None."""
    if lo == 0 and hi > 0 and (hi + 1) & hi == 0:
        return (hi + 1).bit_length() - 1, 0, 0
    if hi > 0 and lo == -hi and (hi + 1) & hi == 0:
        return (hi + 1).bit_length(), 1, 1
    if hi >= 0 and lo == -(hi + 1) and (hi + 1) & hi == 0:
        return (hi + 1).bit_length(), 1, 0
    return None


@dataclass(frozen=True)
class QdqToQuant:
    """``w_bits``: layer name -> weight bits (int8 codes alone do not tell a 3-bit layer from a 4-bit one)."""

    w_bits: Mapping[str, int]

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        graph = Graph(model)
        changed = False
        for chain in act_chains(graph):
            changed |= self._activation(graph, chain)
        graph.reindex()
        for dq in list(model.graph.node):
            if dq.op_type == "DequantizeLinear" and graph.const(dq.input[0]) is not None:
                changed |= self._constant(graph, dq)
        if changed and not any(o.domain == QONNX_DOMAIN for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid(QONNX_DOMAIN, 1))
        return model, changed

    @staticmethod
    def _activation(graph: Graph, chain: ActChain) -> bool:
        attrs = quant_attrs(*chain.codes)
        if not chain.closed or attrs is None:
            return False
        bits, signed, narrow = attrs
        base = chain.q.name or "quant"
        ins = [  # codes are taken relative to the zero point, so QONNX's zeropt is 0
            chain.source,
            chain.q.input[1],
            graph.add_initializer(np.float32(0.0), f"{base}.zeropt"),
            graph.add_initializer(np.float32(bits), f"{base}.bitwidth"),
        ]
        out = chain.dqs[0].output[0]
        node = helper.make_node(
            "Quant",
            ins,
            [out],
            name=base,
            domain=QONNX_DOMAIN,
            signed=signed,
            narrow=narrow,
            rounding_mode="ROUND",
        )
        for dq in chain.dqs[1:]:
            graph.replace_uses(dq.output[0], out)
        graph.remove_nodes([chain.q, *([chain.clip] if chain.clip is not None else []), *chain.dqs])
        graph.g.node.append(node)
        return True

    def _constant(self, graph: Graph, dq: onnx.NodeProto) -> bool:
        params = quant_params(graph, dq)
        codes = graph.const(dq.input[0])
        if params is None or codes is None:
            return False
        shape = [-1] + [1] * (codes.ndim - 1) if not params.per_tensor else []
        scale = params.scale.reshape(shape) if shape else params.scale.reshape(())
        zp = params.zero_point.reshape(shape) if shape else params.zero_point.reshape(())
        value = ((codes.astype(np.float32) - zp.astype(np.float32)) * scale).astype(np.float32)
        readers = graph.consumers.get(dq.output[0], [])
        base = dq.name or "dq"
        float_init = graph.add_initializer(value, f"{base}.value")
        layer = readers[0].name if len(readers) == 1 else ""
        if codes.dtype == np.int32 or layer not in self.w_bits:  # bias (or unknown): the float value itself
            graph.replace_uses(dq.output[0], float_init)
            graph.remove_nodes([dq])
            return True
        bits = self.w_bits[layer]
        ins = [
            float_init,
            graph.add_initializer(scale.astype(np.float32), f"{layer}.weight_scale_q"),
            graph.add_initializer(np.float32(0.0), f"{layer}.weight_zeropt"),
            graph.add_initializer(np.float32(bits), f"{layer}.weight_bitwidth"),
        ]
        name = f"{layer}/weight_quant"
        node = helper.make_node(
            "Quant",
            ins,
            [dq.output[0]],
            name=name,
            domain=QONNX_DOMAIN,
            signed=1,
            narrow=1,
            rounding_mode="ROUND",
        )
        graph.remove_nodes([dq])
        graph.g.node.append(node)
        return True
