"""Turn ``Constant`` nodes into initializers so every other pass reads constants one way."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from export._graph import Graph, is_onnx_op

__all__ = ["ConstantsToInitializers"]

_SCALAR_ATTRS = {
    "value_float": np.float32,
    "value_int": np.int64,
    "value_floats": np.float32,
    "value_ints": np.int64,
}


@dataclass(frozen=True)
class ConstantsToInitializers:
    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        graph = Graph(model)
        done = []
        for n in model.graph.node:
            if not is_onnx_op(n, "Constant") or len(n.attribute) != 1:
                continue
            a = n.attribute[0]
            if a.name == "value":
                arr = numpy_helper.to_array(a.t)
            elif a.name in _SCALAR_ATTRS:
                arr = np.asarray(helper.get_attribute_value(a), dtype=_SCALAR_ATTRS[a.name])
            else:
                continue
            t = numpy_helper.from_array(arr, n.output[0])
            model.graph.initializer.append(t)
            done.append(n)
        if done:
            graph.remove_nodes(done)
        return model, bool(done)
