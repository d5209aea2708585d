"""Shrink the integer artifact's fixed part: what its executor does not read, stored once and named short.

The packed weights scale with the searched bits; the graph around them does not, and on a small net it was a
sixth of the artifact (resnet20: ~47 KB of names and shape annotations for 210 nodes). This pass, last in the
integer target's lowering, keeps the computation and every value bit for bit and drops only the spelling:

- zero points that are all zero (bpnas quantization is symmetric): optional inputs of DequantizeLinear, and of
  QuantizeLinear when uint8 (its default output type); an int8 QuantizeLinear keeps one shared scalar;
- identical constants (clip bounds, shared zero points and scales) stored once;
- Conv attributes at their ONNX defaults, and ``kernel_shape`` (the weight's shape says it);
- each activation quantizer ``QuantizeLinear -> [Clip ->] DequantizeLinear`` and each packed weight
  ``UnpackCodes -> DequantizeLinear`` one ``ai.bpnas`` node (``QCDQ``, ``DequantizePacked``);
- a layer's bias scale, where it is exactly the float32 product of its input's and weight's scales: a
  ``DequantizeBias`` node recomputes it from those;
- a whole layer, ``DequantizePacked (or int8 DequantizeLinear) -> [DequantizeBias ->] Conv -> [QCDQ]``,
  one fused layer node
  (``QConv``, ``QGemm``, ...: one node per layer, as an integer accelerator runs it; a layer's fixed part was
  ~350 B of ONNX spelling, a tenth of a small depthwise layer's packed weights), which
  ``runtimes.integer.packing`` expands at load, as it does the three above;
- tensor names: short base-36 ids, except the graph's input and output;
- node names: only layers keep theirs (conv/linear nodes carry the bpnas layer name the config, the manifest
  and per-layer reports key on; Add nodes the residual sum's, which quantizers report as their readers).

When this pass is listed (:func:`is_compact`), the artifact also goes without the shape annotations the opset
converter adds (:func:`export.lowering.finalize`: the integer executor infers every shape from the input and
the weights) and without the ``bpnas_config`` metadata copy (the bundle's manifest holds the config; the
layer nodes keep the layer names and bits).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from export._graph import Graph, prune
from export.passes.name_layers import LAYER_OPS
from export.passes.registry import register_pass
from runtimes.integer.packing import (
    BIAS_DQ,
    DOMAIN,
    FUSABLE_LAYERS,
    OP,
    PACKED_DQ,
    QCDQ,
    QUANT_ATTRS,
    WEIGHT_ATTRS,
    bias_scale,
    fused_layer,
)

__all__ = ["NAMED_OPS", "CompactGraph", "is_compact"]

NAME = "compact_graph"
#: op types whose node names survive: the layers (plain or fused), and the residual sums quantizers name as
#: their readers
NAMED_OPS = (*LAYER_OPS, *map(fused_layer, FUSABLE_LAYERS), "Add")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_CONV_DEFAULTS = {"dilations": 1, "group": 1, "strides": 1, "pads": 0}


def is_compact(passes: Sequence[str]) -> bool:
    """Whether a lowering's artifact goes without shape annotations (``value_info``) and the config's
    metadata copy: this pass is listed."""
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


def _fused(op: str, inputs: Sequence[str], y: str, **attrs: Any) -> onnx.NodeProto:
    return onnx.helper.make_node(op, list(inputs), [y], domain=DOMAIN, **attrs)


def _only_reader(graph: Graph, name: str, op: str) -> onnx.NodeProto | None:
    reader = graph.single_consumer(name)
    return reader if reader is not None and reader.op_type == op and not reader.domain else None


def _dequantizer(graph: Graph, x: str) -> onnx.NodeProto | None:
    """The one DequantizeLinear reading ``x`` as its data, without a zero point; else None."""
    dq = _only_reader(graph, x, "DequantizeLinear")
    return dq if dq is not None and dq.input[0] == x and len(dq.input) == 2 else None


def _packed(graph: Graph, n: onnx.NodeProto) -> tuple[onnx.NodeProto, list[onnx.NodeProto]] | None:
    """``UnpackCodes -> DequantizeLinear`` as one PACKED_DQ node, and the nodes it replaces."""
    dq = _dequantizer(graph, n.output[0])
    if dq is None:
        return None
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in (*n.attribute, *dq.attribute)}
    if attrs.get("axis") == 0:
        del attrs["axis"]  # PACKED_DQ's default: per output channel
    return _fused(PACKED_DQ, [n.input[0], dq.input[1]], dq.output[0], **attrs), [n, dq]


def _quantizer(graph: Graph, q: onnx.NodeProto) -> tuple[onnx.NodeProto, list[onnx.NodeProto]] | None:
    """``QuantizeLinear -> [Clip ->] DequantizeLinear`` on one scale as one QCDQ node, and the nodes it
    replaces; None when the pattern differs (another reader, other scales, non-constant bounds)."""
    clip = _only_reader(graph, q.output[0], "Clip")
    last = clip.output[0] if clip is not None else q.output[0]
    dq = _dequantizer(graph, last)
    if dq is None or dq.input[1] != q.input[1]:
        return None
    if clip is None:
        return _fused(QCDQ, q.input, dq.output[0]), [q, dq]
    bounds = [graph.const(i) for i in clip.input[1:3] if i]
    if len(bounds) != 2 or any(b is None or b.size != 1 for b in bounds):
        return None
    lo, hi = (int(np.asarray(b).reshape(-1)[0]) for b in bounds)
    attrs = {"lo": lo, "hi": hi} if lo else {"hi": hi}  # QCDQ's default lo: 0
    return _fused(QCDQ, q.input, dq.output[0], **attrs), [q, clip, dq]


def fuse_nodes(model: onnx.ModelProto) -> bool:
    """Spell ``UnpackCodes -> DequantizeLinear`` and ``QuantizeLinear -> [Clip ->] DequantizeLinear`` as one
    node each (``runtimes.integer.packing`` expands them back at load)."""
    graph = Graph(model)
    fused = {}  # id of a pattern's first node -> (the fused node, the nodes it replaces)
    for n in model.graph.node:
        found = None
        if n.op_type == OP and n.domain == DOMAIN:
            found = _packed(graph, n)
        elif n.op_type == "QuantizeLinear" and not n.domain:
            found = _quantizer(graph, n)
        if found is not None:
            fused[id(n)] = found
    return _replace(model, fused)


def _replace(model: onnx.ModelProto, fused: dict[int, tuple[onnx.NodeProto, list[onnx.NodeProto]]]) -> bool:
    """Put each fused node where its anchor node (the key, by id) stood and drop the nodes it replaces;
    whether anything was fused."""
    gone = {id(m) for _, parts in fused.values() for m in parts}
    nodes = [
        fused[id(n)][0] if id(n) in fused else n
        for n in model.graph.node
        if id(n) in fused or id(n) not in gone
    ]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return bool(fused)


def _scale_of(graph: Graph, name: str) -> str | None:
    """The constant scale input of the (fused or plain) dequantizer producing ``name``, else None."""
    n = graph.producer.get(name)
    ok = n is not None and (
        (n.domain == DOMAIN and n.op_type in (QCDQ, PACKED_DQ))
        or (not n.domain and n.op_type == "DequantizeLinear")
    )
    return n.input[1] if n is not None and ok and graph.const(n.input[1]) is not None else None


def fuse_biases(model: onnx.ModelProto) -> bool:
    """A layer's bias ``DequantizeLinear`` whose stored scale is exactly ``bias_scale(input scale, weight
    scale)`` becomes a BIAS_DQ node reading those two scales instead (the stored one goes)."""
    graph = Graph(model)
    changed = False
    for layer in model.graph.node:
        if layer.op_type not in LAYER_OPS or layer.domain or len(layer.input) < 3:
            continue
        dq = graph.producer.get(layer.input[2])
        if dq is None or dq.op_type != "DequantizeLinear" or dq.domain or len(dq.input) != 2:
            continue
        scales = [_scale_of(graph, layer.input[0]), _scale_of(graph, layer.input[1])]
        stored = graph.const(dq.input[1])
        if stored is None or graph.const_type(dq.input[0]) != onnx.TensorProto.INT32 or None in scales:
            continue
        x_scale, w_scale = (graph.const(str(s)) for s in scales)
        derived = bias_scale(np.asarray(x_scale), np.asarray(w_scale))
        if derived.shape != stored.shape or derived.tobytes() != stored.astype(np.float32).tobytes():
            continue  # not the float32 product: keep the stored scale
        fused = _fused(BIAS_DQ, [dq.input[0], str(scales[0]), str(scales[1])], dq.output[0])
        dq.CopyFrom(fused)
        changed = True
    return changed


def _fusable(graph: Graph, layer: onnx.NodeProto) -> tuple[list[str], list[onnx.NodeProto]] | None:
    """A layer's fused-node inputs and the nodes it replaces (weight, bias, output quantizer), or None where
    its weight is not constant codes (packed, or an 8-bit layer's int8), a part has another reader or their
    attributes would collide."""
    w = graph.producer.get(layer.input[1]) if len(layer.input) > 1 else None
    if w is None or graph.single_consumer(w.output[0]) is None:
        return None
    int8 = (w.domain, w.op_type, len(w.input)) == ("", "DequantizeLinear", 2)
    if (w.domain, w.op_type) != (DOMAIN, PACKED_DQ) and not (
        int8 and graph.const_type(w.input[0]) == onnx.TensorProto.INT8
    ):
        return None
    inputs, parts = [layer.input[0], "", w.input[0], w.input[1]], [w]
    if len(layer.input) > 2 and layer.input[2]:
        b = graph.producer.get(layer.input[2])
        if b is None or (b.domain, b.op_type) != (DOMAIN, BIAS_DQ) or b.input[2] != w.input[1]:
            return None
        if graph.single_consumer(b.output[0]) is None:  # the bias is another layer's too
            return None
        inputs[1] = b.input[1]
        inputs.append(b.input[0])
        parts.append(b)
    q = graph.single_consumer(layer.output[0])
    if q is not None and (q.domain, q.op_type) == (DOMAIN, QCDQ):
        inputs += ([] if len(inputs) > 4 else [""]) + list(q.input[1:])
        parts.append(q)
    names = [a.name for n in (layer, *parts) for a in n.attribute]
    owned = {*WEIGHT_ATTRS, *QUANT_ATTRS}
    if len(names) != len(set(names)) or any(a.name in owned for a in layer.attribute):
        return None
    return inputs, parts


def fuse_layers(model: onnx.ModelProto) -> bool:
    """Spell each layer with constant weight codes, with its bias and output quantizer, as one fused layer
    node (``runtimes.integer.packing`` splits it back at load)."""
    graph = Graph(model)
    fused = {}  # id of a layer -> (its fused node, the layer and the nodes folded into it)
    for layer in model.graph.node:
        found = _fusable(graph, layer) if layer.op_type in FUSABLE_LAYERS and not layer.domain else None
        if found is None:
            continue
        inputs, parts = found
        y = parts[-1].output[0] if parts[-1].op_type == QCDQ else layer.output[0]
        node = _fused(fused_layer(layer.op_type), inputs, y)
        node.name = layer.name
        node.attribute.extend(a for n in (layer, *parts) for a in n.attribute)
        fused[id(layer)] = (node, [layer, *parts])
    return _replace(model, fused)


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
        for field, keep in (("name", node.op_type in NAMED_OPS), ("doc_string", False)):
            if node.HasField(field) and not (keep and getattr(node, field)):
                node.ClearField(field)  # absent, not an empty string: 2 bytes less per node
                changed = True
    return changed


@dataclass(frozen=True)
class CompactGraph:
    """The integer artifact without the spelling its executor does not read (see the module docstring)."""

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        changed = drop_zero_points(model)
        changed = dedupe_constants(model) or changed
        changed = drop_conv_defaults(model) or changed
        changed = fuse_nodes(model) or changed
        changed = fuse_biases(model) or changed
        changed = fuse_layers(model) or changed
        if changed:
            prune(model)  # unread constants go before naming, so ids follow the graph as it stays
        if any(n.domain == DOMAIN for n in model.graph.node) and all(
            o.domain != DOMAIN for o in model.opset_import
        ):
            model.opset_import.append(onnx.helper.make_opsetid(DOMAIN, 1))  # whichever step wrote the first
            changed = True
        changed = shorten_names(model) or changed
        if model.graph.value_info:
            del model.graph.value_info[:]
            changed = True
        return model, changed


register_pass(NAME, CompactGraph, stage="engine", after=("pack_weights",))
