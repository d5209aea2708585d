"""The integer artifact's compact encoding, decoded bit-exactly at load. Torch-free.

Bit-packed weight codes: a w-bit layer stores w bits per weight. A packed weight is a ``uint8`` initializer
read by one ``UnpackCodes`` node (domain :data:`DOMAIN`, attributes ``bits`` and ``shape``) whose output,
the int8 codes, feeds the layer's ``DequantizeLinear`` as before; codes are two's complement in ``bits`` bits,
little-endian bit order, the last byte zero-padded. Fused nodes (written by
``export/passes/compact_graph.py``) spell a common pattern as one node: :data:`PACKED_DQ` is ``UnpackCodes``
then ``DequantizeLinear(scale, axis)`` (``axis`` 0 unless given), and :data:`QCDQ` an activation quantizer's
``QuantizeLinear(x, scale[, zero point]) -> Clip(lo, hi) -> DequantizeLinear(scale)`` (``lo`` 0 unless
given; no Clip without ``hi``). :data:`BIAS_DQ` is a layer's ``DequantizeLinear(int32 bias codes, scale,
axis 0)`` whose scale is not stored but recomputed from its input's and its weight's scales
(:func:`bias_scale`, lossless: the pass checks it gives the stored one bit for bit). A fused layer
(:func:`fused_layer`, e.g. ``QConv``) is one whole layer, the unit an integer accelerator runs:
``(x, x scale, weight codes, weight scale[, bias codes[, output scale[, zero point]]])`` stands for
``PACKED_DQ(codes, weight scale) -> [BIAS_DQ(bias, x scale, weight scale) ->] Conv(x, w[, b]) ->
[QCDQ(output scale[, zero point])]``, its attributes split back by name (:data:`WEIGHT_ATTRS` to the
weight, :data:`QUANT_ATTRS` to the quantizer, the rest to the layer op; an absent bias is an empty name);
without ``bits`` the codes are an 8-bit layer's int8 ones and the weight a plain ``DequantizeLinear``.
:func:`unpack_initializers` expands them all back, so the executor compiles exactly the graph a plain QDQ
artifact has.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from sdk.errors import BundleError

__all__ = [
    "BIAS_DQ",
    "DOMAIN",
    "OP",
    "PACKED_DQ",
    "FUSABLE_LAYERS",
    "QCDQ",
    "QUANT_ATTRS",
    "WEIGHT_ATTRS",
    "bias_scale",
    "fused_layer",
    "pack_codes",
    "split_layers",
    "unpack_codes",
    "unpack_initializers",
]

DOMAIN = "ai.bpnas"
OP = "UnpackCodes"
PACKED_DQ = "DequantizePacked"
BIAS_DQ = "DequantizeBias"
QCDQ = "QCDQ"
#: layer ops a fused layer node can stand for (its op type: :func:`fused_layer`)
FUSABLE_LAYERS = ("Conv", "Gemm", "MatMul", "ConvTranspose")
#: a fused layer's attributes that belong to its weight (PACKED_DQ) and to its output quantizer (QCDQ)
WEIGHT_ATTRS = ("bits", "shape", "axis")
QUANT_ATTRS = ("lo", "hi")
_LAYER_OF = {f"Q{op}": op for op in FUSABLE_LAYERS}


def fused_layer(op: str) -> str:
    """The op type of a fused layer node standing for a layer ``op`` (``Conv`` -> ``QConv``)."""
    return f"Q{op}"


def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """``codes`` (any shape, values in the signed ``bits``-bit range) as packed ``uint8`` bytes."""
    if not 2 <= bits <= 8:
        raise ValueError(f"bits must be 2..8, got {bits}")
    c = np.asarray(codes).astype(np.int64).reshape(-1)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if c.size and (c.min() < lo or c.max() > hi):
        raise ValueError(f"codes span [{c.min()}, {c.max()}], outside the {bits}-bit range [{lo}, {hi}]")
    u = (c & ((1 << bits) - 1)).astype(np.uint16)
    plane = ((u[:, None] >> np.arange(bits, dtype=np.uint16)) & 1).astype(np.uint8)
    return np.packbits(plane.reshape(-1), bitorder="little")


def unpack_codes(packed: np.ndarray, bits: int, shape: tuple[int, ...]) -> np.ndarray:
    """The int8 codes :func:`pack_codes` stored, shaped ``shape``."""
    n = int(np.prod(shape, dtype=np.int64))
    need = (n * bits + 7) // 8
    data = np.asarray(packed, dtype=np.uint8).reshape(-1)
    if not 2 <= bits <= 8 or data.size != need:
        raise BundleError(f"packed weights: {data.size} bytes for {n} codes of {bits} bits (want {need}).")
    plane = np.unpackbits(data, bitorder="little", count=n * bits).reshape(n, bits).astype(np.int16)
    u = (plane << np.arange(bits, dtype=np.int16)).sum(axis=1)
    signed = np.where(u >= 1 << (bits - 1), u - (1 << bits), u)
    return signed.astype(np.int8).reshape(shape)


def bias_scale(x_scale: np.ndarray, w_scale: np.ndarray) -> np.ndarray:
    """A layer's bias scale as :data:`BIAS_DQ` recomputes it: the float32 product of its input's and its
    weight's scales (the exporter's ``s_in * s_w``; the pass fuses only where the stored one equals it)."""
    return np.multiply(np.asarray(x_scale, np.float32), np.asarray(w_scale, np.float32), dtype=np.float32)


_Inits = dict[str, onnx.TensorProto]


def _packed_dq(
    model: onnx.ModelProto, inits: _Inits, n: onnx.NodeProto, at: dict, reader: str
) -> list[onnx.NodeProto]:
    y = n.output[0]
    unpack = helper.make_node(
        OP, [n.input[0]], [f"{y}/codes"], domain=DOMAIN, bits=at["bits"], shape=at["shape"]
    )
    axis = int(at.get("axis", 0))  # per output channel unless said
    return [unpack, helper.make_node("DequantizeLinear", [f"{y}/codes", n.input[1]], [y], axis=axis)]


def _bias_dq(
    model: onnx.ModelProto, inits: _Inits, n: onnx.NodeProto, at: dict, reader: str
) -> list[onnx.NodeProto]:
    y = n.output[0]
    x_scale, w_scale = (numpy_helper.to_array(inits[i]) for i in n.input[1:3])
    model.graph.initializer.append(numpy_helper.from_array(bias_scale(x_scale, w_scale), f"{y}/scale"))
    return [helper.make_node("DequantizeLinear", [n.input[0], f"{y}/scale"], [y], axis=0)]


def _qcdq(
    model: onnx.ModelProto, inits: _Inits, n: onnx.NodeProto, at: dict, reader: str
) -> list[onnx.NodeProto]:
    y = n.output[0]
    zp = n.input[2] if len(n.input) > 2 and n.input[2] else None
    dtype = numpy_helper.to_array(inits[zp]).dtype if zp in inits else np.dtype(np.uint8)
    codes = f"{reader}:{y}/q" if reader else f"{y}/q"  # the quantizer's name: per-layer times map it back
    nodes = [helper.make_node("QuantizeLinear", list(n.input[:3]), [codes])]
    if "hi" in at:
        bounds = [f"{y}/lo", f"{y}/hi"]
        for name, v in zip(bounds, (at.get("lo", 0), at["hi"])):
            model.graph.initializer.append(numpy_helper.from_array(np.array(v, dtype=dtype), name))
        nodes.append(helper.make_node("Clip", [codes, *bounds], [f"{y}/c"]))
        codes = f"{y}/c"
    return [*nodes, helper.make_node("DequantizeLinear", [codes, n.input[1]], [y])]


_EXPAND = {PACKED_DQ: _packed_dq, BIAS_DQ: _bias_dq, QCDQ: _qcdq}


def _split_layer(n: onnx.NodeProto) -> list[onnx.NodeProto]:
    """A fused layer node as the weight, bias and quantizer nodes and the plain layer op it stands for."""
    x, x_scale, packed, w_scale, *rest = n.input
    bias, quant, y = (rest[0] if rest else ""), rest[1:], n.output[0]
    if any(a.name == "bits" for a in n.attribute):
        weight = helper.make_node(PACKED_DQ, [packed, w_scale], [f"{y}/w"], domain=DOMAIN)
    else:  # an 8-bit layer's int8 codes, stored as they are
        weight = helper.make_node("DequantizeLinear", [packed, w_scale], [f"{y}/w"])
    nodes, inputs = [weight], [x, f"{y}/w"]
    if bias:
        nodes.append(helper.make_node(BIAS_DQ, [bias, x_scale, w_scale], [f"{y}/b"], domain=DOMAIN))
        inputs.append(f"{y}/b")
    layer = helper.make_node(_LAYER_OF[n.op_type], inputs, [f"{y}/acc" if quant else y], name=n.name)
    nodes.append(layer)
    if quant:
        nodes.append(helper.make_node(QCDQ, [f"{y}/acc", *quant], [y], domain=DOMAIN))
    for a in n.attribute:
        owner = weight if a.name in WEIGHT_ATTRS else nodes[-1] if a.name in QUANT_ATTRS and quant else layer
        owner.attribute.append(a)
    return nodes


def split_layers(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace every fused layer node by the weight, bias, layer and quantizer nodes it stands for, in place
    (returns ``model``)."""
    nodes: list[onnx.NodeProto] = []
    for n in model.graph.node:
        fused = n.domain == DOMAIN and n.op_type in _LAYER_OF
        nodes += _split_layer(n) if fused else [n]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def _expand_fused(model: onnx.ModelProto) -> None:
    """Replace every fused node (:data:`PACKED_DQ`, :data:`BIAS_DQ`, :data:`QCDQ`) by the standard nodes it
    stands for, in place."""
    inits = {t.name: t for t in model.graph.initializer}
    readers: dict[str, str] = {}  # tensor -> the first named node (a layer) reading it, else producing it
    for n in model.graph.node:
        for i in n.input if n.name else ():
            readers.setdefault(i, n.name)
    producers = {o: n.name for n in model.graph.node if n.name for o in n.output}
    for n in model.graph.node:
        if n.domain == DOMAIN and n.op_type == QCDQ and n.output[0] not in readers:
            readers[n.output[0]] = producers.get(n.input[0], "")
    nodes: list[onnx.NodeProto] = []
    for n in model.graph.node:
        expand = _EXPAND.get(n.op_type) if n.domain == DOMAIN else None
        if expand is None:
            nodes.append(n)
            continue
        at = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        nodes += expand(model, inits, n, at, readers.get(n.output[0], ""))
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def unpack_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` in plain QDQ form: fused nodes expanded, every ``UnpackCodes`` of a constant
    replaced by its int8 initializer (``model`` itself when it has none of them)."""
    if not any(n.domain == DOMAIN for n in model.graph.node):
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    try:
        split_layers(out)
        _expand_fused(out)
    except (KeyError, IndexError, ValueError) as e:
        raise BundleError(f"integer artifact: a fused {DOMAIN} node is malformed ({e!r}); re-export.") from e
    inits = {t.name: t for t in out.graph.initializer}
    drop = set()
    keep = []
    for n in out.graph.node:
        if n.op_type != OP or n.domain != DOMAIN:
            keep.append(n)
            continue
        if n.input[0] not in inits:
            raise BundleError(
                f"packed weights: {n.name or OP} reads {n.input[0]!r}, which is not a constant."
            )
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        codes = unpack_codes(
            numpy_helper.to_array(inits[n.input[0]]), int(attrs["bits"]), tuple(attrs["shape"])
        )
        out.graph.initializer.append(numpy_helper.from_array(codes, n.output[0]))
        drop.add(n.input[0])
    del out.graph.node[:]
    out.graph.node.extend(keep)
    live = [t for t in out.graph.initializer if t.name not in drop]
    del out.graph.initializer[:]
    out.graph.initializer.extend(live)
    imports = [o for o in out.opset_import if o.domain != DOMAIN]
    del out.opset_import[:]
    out.opset_import.extend(imports)
    return out
