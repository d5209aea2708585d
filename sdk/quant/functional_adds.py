"""Functional residual additions (``x + y``, ``torch.add(x, y)``) in users' models, made quantizable.

``sdk.quantize`` quantizes residual additions that are ``sdk.models.layers.Add`` modules. A user's model
usually writes ``out + identity`` instead, which would stay float: integer engines then run the convolutions
around it in float. :func:`modularize_adds` rewrites such additions into ``Add`` modules with torch.fx
(parameter names are unchanged, so state_dicts still load); where fx cannot trace the model it warns with the
fix instead.
"""

from __future__ import annotations

import operator
import warnings
from typing import Any

import torch
from torch import fx, nn

from sdk.models.layers import Add

__all__ = ["modularize_adds", "FunctionalAddWarning"]

_ADDS = (operator.add, operator.iadd, torch.add)
_SHAPE_OPS = ("size", "dim", "numel")


class FunctionalAddWarning(UserWarning):
    """A model's residual additions could not be checked or converted and may stay float."""


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, Add) or super().is_leaf_module(m, qualname)


def _is_tensor_node(arg: Any) -> bool:
    if not isinstance(arg, fx.Node) or arg.op in ("get_attr",):
        return False
    if arg.op == "call_function" and arg.target in (getattr, len):
        return False
    return not (arg.op == "call_method" and arg.target in _SHAPE_OPS)


def _tensor_add(node: fx.Node) -> bool:
    is_add = (node.op == "call_function" and node.target in _ADDS) or (
        node.op == "call_method" and node.target in ("add", "add_", "__add__")
    )
    if not is_add or node.kwargs.get("alpha", 1) != 1 or len(node.args) != 2:
        return False
    return all(_is_tensor_node(a) for a in node.args)


def modularize_adds(model: nn.Module, *, warn: bool = True) -> nn.Module:
    """``model`` with every tensor + tensor addition of its forward as an ``Add`` module (a GraphModule), or
    ``model`` itself when it has none; when fx cannot trace it, ``model`` itself and (``warn``) a warning."""
    try:
        graph = _Tracer().trace(model)
    except Exception as e:  # fx raises many types for untraceable Python control flow
        if warn and not any(isinstance(m, Add) for m in model.modules()):
            reason = " ".join(str(e).split())[:160]
            warnings.warn(
                f"could not trace {type(model).__name__} with torch.fx ({type(e).__name__}: {reason}), so "
                "functional residual additions in its forward (x + y, torch.add) cannot be found; any there "
                "stay float and engines run the layers around them in float. Fix: make each addition a "
                "module, `self.add = sdk.models.layers.Add()` and `out = self.add(out, identity)`.",
                FunctionalAddWarning,
                stacklevel=2,
            )
        return model
    adds = [n for n in graph.nodes if _tensor_add(n)]
    if not adds:
        return model
    gm = fx.GraphModule(model, graph, class_name=type(model).__name__)
    for i, node in enumerate(adds):
        name = f"residual_add{i}"
        while hasattr(gm, name):
            name += "_"
        gm.add_module(name, Add())
        with graph.inserting_after(node):
            new = graph.call_module(name, tuple(node.args))
        node.replace_all_uses_with(new)
        graph.erase_node(node)
    gm.recompile()
    gm.train(model.training)
    return gm
