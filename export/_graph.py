"""Small torch-free helpers over an ``onnx.ModelProto`` that the lowering passes share.

Passes edit the model in place and keep it valid: new tensors get unique names, initializers shared by
several nodes are never changed in place (a pass adds a new one instead), and :func:`toposort` restores
node order after a pass inserted nodes out of place.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "Graph",
    "INT_RANGES",
    "attr",
    "is_onnx_op",
    "np_dtype",
    "onnx_opset",
    "onnx_dtype",
]

# ONNX integer data type -> (min, max) of the container
INT_RANGES: dict[int, tuple[int, int]] = {
    TensorProto.UINT8: (0, 255),
    TensorProto.INT8: (-128, 127),
    TensorProto.INT32: (-(2**31), 2**31 - 1),
}


def np_dtype(onnx_type: int) -> np.dtype:
    return np.dtype(helper.tensor_dtype_to_np_dtype(onnx_type))


def onnx_dtype(dtype: np.dtype | type) -> int:
    return int(helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))


ONNX_DOMAINS = ("", "ai.onnx")  # the default operator set's two spellings


def is_onnx_op(node: onnx.NodeProto, *op_types: str) -> bool:
    """``node`` is one of ``op_types`` from the default ONNX domain (not a contrib op of the same name)."""
    return node.op_type in op_types and node.domain in ONNX_DOMAINS


def onnx_opset(model: onnx.ModelProto) -> int:
    """The model's default-domain opset version."""
    return next(o.version for o in model.opset_import if o.domain in ONNX_DOMAINS)


def attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    """The value of attribute ``name`` of ``node``, or ``default``."""
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


class Graph:
    """An index over ``model.graph`` (producers, consumers, initializers) with editing helpers.

    Build one per pass application; after structural edits call :meth:`reindex` (or build a new one).
    """

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.g = model.graph
        self._counter = itertools.count()
        self.reindex()

    # -- indexes ------------------------------------------------------------------------------------
    def reindex(self) -> None:
        self.init: dict[str, TensorProto] = {t.name: t for t in self.g.initializer}
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for n in self.g.node:
            for o in n.output:
                if o:
                    self.producer[o] = n
            for i in n.input:
                if i:
                    self.consumers[i].append(n)
        self.outputs = {o.name for o in self.g.output}
        self._names = (
            set(self.init)
            | set(self.producer)
            | {i.name for i in self.g.input}
            | {n.name for n in self.g.node if n.name}
        )

    def uses(self, name: str) -> int:
        """How many node inputs (plus graph outputs) read tensor ``name``."""
        return len(self.consumers.get(name, ())) + (1 if name in self.outputs else 0)

    def single_consumer(self, name: str) -> onnx.NodeProto | None:
        cons = self.consumers.get(name, [])
        return cons[0] if len(cons) == 1 and name not in self.outputs else None

    # -- constants ----------------------------------------------------------------------------------
    def const(self, name: str) -> np.ndarray | None:
        """The value of tensor ``name`` if it is an initializer, else None."""
        t = self.init.get(name)
        return numpy_helper.to_array(t) if t is not None else None

    def const_type(self, name: str) -> int | None:
        t = self.init.get(name)
        return int(t.data_type) if t is not None else None

    def unique(self, hint: str) -> str:
        name = hint
        while name in self._names:
            name = f"{hint}_{next(self._counter)}"
        self._names.add(name)
        return name

    def add_initializer(self, value: Any, hint: str) -> str:
        name = self.unique(hint)
        t = numpy_helper.from_array(np.asarray(value), name)
        self.g.initializer.append(t)
        self.init[name] = t
        return name

    # -- nodes --------------------------------------------------------------------------------------
    def make_node(
        self,
        op_type: str,
        inputs: Sequence[str],
        outputs: Sequence[str] | None = None,
        *,
        name: str | None = None,
        domain: str = "",
        **attrs: Any,
    ) -> onnx.NodeProto:
        """Create a node (not yet in the graph) with unique output/node names."""
        base = name or op_type
        outs = list(outputs) if outputs is not None else [self.unique(f"{base}_out")]
        node = helper.make_node(op_type, list(inputs), outs, name=self.unique(base), domain=domain, **attrs)
        return node

    def replace_uses(self, old: str, new: str, *, skip: Iterable[onnx.NodeProto] = ()) -> None:
        """Point every reader of tensor ``old`` (nodes and graph outputs) at ``new``."""
        skipped = {id(n) for n in skip}
        for n in self.g.node:
            if id(n) in skipped:
                continue
            for k, i in enumerate(n.input):
                if i == old:
                    n.input[k] = new
        for o in self.g.output:
            if o.name == old:
                raise ValueError(f"cannot rewire graph output {old!r}; rename the producer's output instead")

    def remove_nodes(self, nodes: Iterable[onnx.NodeProto]) -> None:
        """Delete ``nodes`` in place (other node objects stay valid; extend() would copy them)."""
        ids = {id(n) for n in nodes}
        for k in reversed(range(len(self.g.node))):
            if id(self.g.node[k]) in ids:
                del self.g.node[k]


def toposort(model: onnx.ModelProto) -> None:
    """Reorder ``model.graph.node`` topologically (stable: keeps the existing order where it is valid)."""
    g = model.graph
    available = {i.name for i in g.input} | {t.name for t in g.initializer} | {""}
    pending = list(g.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        rest = []
        progressed = False
        for n in pending:
            if all(i in available for i in n.input):
                ordered.append(n)
                available.update(n.output)
                progressed = True
            else:
                rest.append(n)
        if not progressed:
            missing = sorted({i for n in rest for i in n.input if i not in available})[:5]
            raise ValueError(f"graph has a cycle or reads undefined tensors: {missing}")
        pending = rest
    del g.node[:]
    g.node.extend(ordered)


def prune(model: onnx.ModelProto) -> bool:
    """Drop nodes whose outputs nobody reads and initializers no node reads. True if anything went."""
    g = model.graph
    changed = False
    while True:
        graph = Graph(model)
        dead = [n for n in g.node if all(graph.uses(o) == 0 for o in n.output if o) and n.output]
        if not dead:
            break
        graph.remove_nodes(dead)
        changed = True
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep = [t for t in g.initializer if t.name in used]
    if len(keep) != len(g.initializer):
        del g.initializer[:]
        g.initializer.extend(keep)
        changed = True
    names = {t.name for t in g.initializer} | {o for n in g.node for o in n.output}
    vi = [v for v in g.value_info if v.name in names]
    if len(vi) != len(g.value_info):
        del g.value_info[:]
        g.value_info.extend(vi)
    return changed
