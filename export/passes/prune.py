"""Remove nodes nobody reads and initializers no node uses."""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from export._graph import prune

__all__ = ["Prune"]


@dataclass(frozen=True)
class Prune:
    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        return model, prune(model)
