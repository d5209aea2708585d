"""Pack each layer's int8 weight codes to its searched weight bits (the integer/FPGA artifact's storage).

``int8 codes -> DequantizeLinear`` becomes ``uint8 packed -> UnpackCodes(bits, shape) -> DequantizeLinear``
(:mod:`runtimes._packing`), so a 3-bit layer takes 3 bits per weight plus its scales. Only the bpnas
integer executor reads ``UnpackCodes``; it unpacks at load, bit-exactly. Run it last: other passes read the
codes as a constant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from export._graph import Graph
from runtimes._packing import DOMAIN, OP, pack_codes

__all__ = ["PackWeights"]


@dataclass(frozen=True)
class PackWeights:
    """``w_bits``: layer name -> weight bits (int8 codes alone do not tell a 3-bit layer from a 4-bit one)."""

    w_bits: Mapping[str, int]

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        graph = Graph(model)
        changed = False
        for dq in list(model.graph.node):
            if dq.op_type != "DequantizeLinear" or graph.const_type(dq.input[0]) != TensorProto.INT8:
                continue
            readers = graph.consumers.get(dq.output[0], [])
            bits = self.w_bits.get(readers[0].name) if len(readers) == 1 else None
            codes = graph.const(dq.input[0])
            if bits is None or codes is None or bits >= 8:
                continue  # not a layer's weight, or 8 bits: int8 already is the packed form
            name = f"{readers[0].name}.weight_packed"
            packed = graph.add_initializer(pack_codes(codes, bits), name)
            unpacked = f"{readers[0].name}.weight_codes"
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
