"""Pack each layer's int8 weight codes to its weight bits (the integer/FPGA artifact's storage).

``int8 codes -> DequantizeLinear`` becomes ``uint8 packed -> UnpackCodes(bits, shape) -> DequantizeLinear``
(:mod:`runtimes._packing`), so a 3-bit layer takes 3 bits per weight plus its scales. The width is the
narrowest two's complement width holding the codes: the layer's w bits (its codes lie in ``[-n, n]``, ``n =
2^(w-1) - 1``), fewer only when no weight reaches the clip, and exact either way; 8-bit layers stay int8.
Only the bpnas integer executor reads ``UnpackCodes``; it unpacks at load, bit-exactly. Run it last: other
passes read the codes as a constant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from export._graph import Graph
from export.passes.registry import register_pass
from runtimes.integer.packing import DOMAIN, OP, pack_codes

__all__ = ["PackWeights"]

_LAYERS = ("Conv", "Gemm", "MatMul", "ConvInteger", "MatMulInteger")


@dataclass(frozen=True)
class PackWeights:
    """Every int8 weight-code initializer read by one DequantizeLinear feeding a Conv/Gemm/MatMul."""

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        graph = Graph(model)
        changed = False
        for dq in list(model.graph.node):
            if dq.op_type != "DequantizeLinear" or graph.const_type(dq.input[0]) != TensorProto.INT8:
                continue
            readers = graph.consumers.get(dq.output[0], [])
            codes = graph.const(dq.input[0])
            if len(readers) != 1 or readers[0].op_type not in _LAYERS or codes is None or not codes.size:
                continue
            bits = max(2, int(np.abs(codes.astype(np.int64)).max()).bit_length() + 1)
            if bits >= 8:
                continue  # int8 already is the packed form
            name = f"{readers[0].name}.weight_packed"
            packed = graph.add_initializer(pack_codes(codes, bits), name)
            unpacked = graph.unique(f"{readers[0].name}.weight_unpacked")
            node = helper.make_node(
                OP,
                [packed],
                [unpacked],
                name=f"{readers[0].name}/unpack",
                domain=DOMAIN,
                bits=int(bits),
                shape=[int(s) for s in np.shape(codes)],
            )
            dq.input[0] = unpacked
            model.graph.node.insert(list(model.graph.node).index(dq), node)
            changed = True
        if changed and not any(o.domain == DOMAIN for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid(DOMAIN, 1))
        return model, changed


register_pass(
    "pack_weights",
    PackWeights,
    stage="engine",
    after=("power_of_two_check",),
    excludes=("code_arithmetic", "integer_ops"),
)
