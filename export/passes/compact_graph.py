"""Shrink the integer artifact's fixed part: what its executor does not read, stored once and named short.

The packed weights scale with the searched bits; the graph around them does not, and on a small net it was a
sixth of the artifact (resnet20: ~47 KB of names and shape annotations for 210 nodes). This pass, last in the
integer target's lowering, keeps the computation and every value bit for bit and drops only the spelling:

- zero points that are all zero (bpnas quantization is symmetric): optional inputs of DequantizeLinear, and of
  QuantizeLinear when uint8 (its default output type); an int8 QuantizeLinear keeps one shared scalar;
- identical constants (clip bounds, shared zero points and scales) stored once;
- Conv attributes at their ONNX defaults, and ``kernel_shape`` (the weight's shape says it);
- tensor names: short base-36 ids, except the graph's input and output;
- node names: only layers keep theirs (conv/linear nodes carry the bpnas layer name the config, the manifest
  and per-layer reports key on; Add nodes the residual sum's, which quantizers report as their readers).

The shape annotations the opset converter adds are dropped by :func:`export.lowering.finalize` when this pass
is listed (:func:`drops_shapes`): the integer executor infers every shape from the input and the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from export._graph import prune
from export.passes.name_layers import LAYER_OPS
from export.passes.registry import register_pass

__all__ = ["NAMED_OPS", "CompactGraph", "drops_shapes"]

NAME = "compact_graph"
#: op types whose node names survive: the layers, and the residual sums quantizers name as their readers
NAMED_OPS = (*LAYER_OPS, "Add")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_CONV_DEFAULTS = {"dilations": 1, "group": 1, "strides": 1, "pads": 0}


def drops_shapes(passes: Sequence[str]) -> bool:
    """Whether a lowering's artifact goes without shape annotations (``value_info``): this pass is listed."""
    return NAME in passes


def _short(i: int) -> str:
    out = ""
    while True:
        i, r = divmod(i, len(_DIGITS))
        out = _DIGITS[r] + out
        if not i:
            return out


def _consts(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def drop_zero_points(model: onnx.ModelProto) -> bool:
    """Remove all-zero zero points where ONNX's default means the same (DQ always, Q when uint8)."""
    consts = _consts(model)
    changed = False
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(node.input) < 3 or node.domain:
            continue
        zp = consts.get(node.input[2])
        if zp is None or np.any(zp != 0):
            continue
        if node.op_type == "QuantizeLinear" and zp.dtype != np.uint8:
            continue  # an int8 zero point is what makes the codes signed
        del node.input[2]
        changed = True
    return changed


def dedupe_constants(model: onnx.ModelProto) -> bool:
    """Point every reader of a constant at the first initializer holding the same type, shape and bytes."""
    first: dict[tuple[int, tuple[int, ...], bytes], str] = {}
    alias: dict[str, str] = {}
    for t in model.graph.initializer:
        key = (int(t.data_type), tuple(t.dims), numpy_helper.to_array(t).tobytes())
        alias[t.name] = first.setdefault(key, t.name)
    changed = False
    for node in model.graph.node:
        for k, name in enumerate(node.input):
            if alias.get(name, name) != name:
                node.input[k] = alias[name]
                changed = True
    return changed


def drop_conv_defaults(model: onnx.ModelProto) -> bool:
    """Remove Conv attributes equal to ONNX's defaults, and kernel_shape (inferred from the weight)."""
    changed = False
    for node in model.graph.node:
        if node.op_type != "Conv" or node.domain:
            continue
        keep = [
            a
            for a in node.attribute
            if a.name != "kernel_shape"
            and not (a.name in _CONV_DEFAULTS and all(v == _CONV_DEFAULTS[a.name] for v in _values(a)))
        ]
        if len(keep) != len(node.attribute):
            del node.attribute[:]
            node.attribute.extend(keep)
            changed = True
    return changed


def _values(a: onnx.AttributeProto) -> list[int]:
    v = onnx.helper.get_attribute_value(a)
    return list(v) if isinstance(v, (list, tuple)) else [v]


def shorten_names(model: onnx.ModelProto) -> bool:
    """Rename every inner tensor to a short id (in order of first use) and clear non-layer node names."""
    g = model.graph
    fixed = {v.name for v in (*g.input, *g.output)}
    new: dict[str, str] = {n: n for n in fixed}
    ids = (s for s in map(_short, range(1 << 62)) if s not in fixed)
    for node in g.node:
        for name in (*node.input, *node.output):
            if name and name not in new:
                new[name] = next(ids)
    changed = False
    for t in g.initializer:
        if t.name in new and new[t.name] != t.name:  # unread initializers are Prune's to drop
            t.name = new[t.name]
            changed = True
    for node in g.node:
        for field in (node.input, node.output):
            for k, name in enumerate(field):
                if name and new[name] != name:
                    field[k] = new[name]
                    changed = True
        if node.name and node.op_type not in NAMED_OPS:
            node.name = ""
            changed = True
        if node.doc_string:
            node.doc_string = ""
            changed = True
    return changed


@dataclass(frozen=True)
class CompactGraph:
    """The integer artifact without the spelling its executor does not read (see the module docstring)."""

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        changed = drop_zero_points(model)
        changed = dedupe_constants(model) or changed
        changed = drop_conv_defaults(model) or changed
        if changed:
            prune(model)  # unread constants go before naming, so ids follow the graph as it stays
        changed = shorten_names(model) or changed
        if model.graph.value_info:
            del model.graph.value_info[:]
            changed = True
        return model, changed


register_pass(NAME, CompactGraph, stage="engine", after=("pack_weights",))
