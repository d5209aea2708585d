"""The integer compiler's state while it walks a graph: the symbolic value of every tensor, the registers
and ops emitted so far, the quantizers and layers found, and the graph's producer/consumer maps.

Node handlers (:mod:`runtimes.integer.nodes`) and value lowering (:mod:`runtimes.integer.lower`) both write
through a :class:`Builder`; neither imports the other's module for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from runtimes.integer.program import LayerInfo, Op, QuantizerInfo
from runtimes.integer.values import Const, Shape
from sdk.errors import BundleError

__all__ = ["Builder"]


class Builder:
    """Registers, emitted ops and value lookups of one compilation."""

    def __init__(self, model: onnx.ModelProto, layer_bits: Mapping[str, tuple[int, int]]) -> None:
        self.graph = model.graph
        self.layer_bits = layer_bits
        self.values: dict[str, Any] = {}
        self.ops: list[Op] = []
        self.nregs = 0
        self.input_reg = 0
        self.layouts: dict[int, str] = {}
        self.memo: dict[tuple[Any, ...], Any] = {}
        self.quantizers: list[QuantizerInfo] = []
        self.codes_regs: dict[str, int] = {}
        self.layers: list[LayerInfo] = []
        self.skip: set[str] = set()  # outputs of nodes folded into another (the Clip of QCDQ)
        self.consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
        self.producer: dict[str, onnx.NodeProto] = {}
        for node in self.graph.node:
            for i, name in enumerate(node.input):
                self.consumers.setdefault(name, []).append((node, i))
            for name in node.output:
                self.producer[name] = node
        for init in self.graph.initializer:
            self.values[init.name] = Const(numpy_helper.to_array(init))

    # registers and ops
    def reg(self, layout: str) -> int:
        self.nregs += 1
        self.layouts[self.nregs] = layout
        return self.nregs

    def emit(
        self, name: str, op_type: str, inputs: tuple[int, ...], fn: Callable[..., np.ndarray], layout: str
    ) -> int:
        out = self.reg(layout)
        self.ops.append(Op(name, op_type, inputs, out, fn))
        return out

    @staticmethod
    def layout(shape: Shape) -> str:
        return "nhwc" if len(shape) == 3 else "nf"

    # lookups
    def value(self, node: onnx.NodeProto, i: int) -> Any:
        if i >= len(node.input) or not node.input[i]:
            return None
        try:
            return self.values[node.input[i]]
        except KeyError:
            raise BundleError(
                f"node {node.name!r} reads {node.input[i]!r}, which nothing produces."
            ) from None

    def const(self, node: onnx.NodeProto, i: int, what: str) -> np.ndarray | None:
        v = self.value(node, i)
        if v is None:
            return None
        if not isinstance(v, Const):
            raise BundleError(f"{node.op_type} {node.name!r}: {what} must be a constant initializer.")
        return v.value

    def fail(self, node: onnx.NodeProto, why: str) -> BundleError:
        return BundleError(
            f"integer runtime: {node.op_type} node {node.name!r}: {why} The integer engine runs only the QDQ "
            "pattern of DESIGN §4 and does not fall back to float; use a float target for this model."
        )
