"""Per-tensor weight scales for targets that need them (``LoweringOptions(per_channel=False)``).

A per-channel scale vector whose entries are all equal becomes a scalar; distinct entries cannot be
represented exactly per tensor, so that model is refused with the fix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from export._graph import Graph
from export._qdq import quant_params
from export.passes.registry import register_pass
from sdk.errors import ConfigError

__all__ = ["PerTensorWeights"]


@dataclass(frozen=True)
class PerTensorWeights:
    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        graph = Graph(model)
        changed = False
        for dq in model.graph.node:
            if dq.op_type != "DequantizeLinear" or graph.const(dq.input[0]) is None:
                continue
            p = quant_params(graph, dq)
            if p is None or p.per_tensor:
                continue
            if np.any(p.scale != p.scale.reshape(-1)[0]) or np.any(
                p.zero_point != p.zero_point.reshape(-1)[0]
            ):
                readers = sorted(c.name for c in graph.consumers.get(dq.output[0], []))
                raise ConfigError(
                    f"layer {', '.join(readers) or dq.name} has per-channel weight scales, but this target "
                    "needs per-tensor scales. Quantize with sdk.quantize(..., per_channel=False) and "
                    "calibrate again."
                )
            base = dq.name or "dq"
            dq.input[1] = graph.add_initializer(p.scale.reshape(-1)[:1].reshape(()), f"{base}_scale")
            if len(dq.input) > 2 and dq.input[2]:
                dq.input[2] = graph.add_initializer(
                    p.zero_point.reshape(-1)[:1].reshape(()), f"{base}_zero_point"
                )
            changed = True
        return model, changed


register_pass("per_tensor_weights", PerTensorWeights, stage="graph")
