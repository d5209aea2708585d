"""The artifact's interface (DESIGN §4): input ``"input"``, output ``"logits"``, batch axis ``"N"``."""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from export._graph import Graph

__all__ = ["IoContract"]


def _rename(model: onnx.ModelProto, old: str, new: str) -> None:
    for n in model.graph.node:
        for k, i in enumerate(n.input):
            if i == old:
                n.input[k] = new
        for k, o in enumerate(n.output):
            if o == old:
                n.output[k] = new
    for v in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        if v.name == old:
            v.name = new


@dataclass(frozen=True)
class IoContract:
    input_name: str = "input"
    output_name: str = "logits"
    batch: str = "N"

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        g = model.graph
        inits = {t.name for t in g.initializer}
        inputs = [i for i in g.input if i.name not in inits]
        if len(inputs) != 1 or len(g.output) != 1:
            raise ValueError(f"expected one input and one output, got {len(inputs)} and {len(g.output)}")
        changed = False
        for v, want in ((inputs[0], self.input_name), (g.output[0], self.output_name)):
            if v.name != want:
                if want in Graph(model).producer or want in inits:
                    raise ValueError(f"cannot rename {v.name!r} to {want!r}: the name is taken")
                _rename(model, v.name, want)
                changed = True
            dims = v.type.tensor_type.shape.dim
            if dims and dims[0].dim_param != self.batch:
                dims[0].Clear()
                dims[0].dim_param = self.batch
                changed = True
        return model, changed
