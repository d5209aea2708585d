"""The integer artifact's compact encoding, decoded bit-exactly at load. Torch-free.

Bit-packed weight codes: a w-bit layer stores w bits per weight. A packed weight is a ``uint8`` initializer
read by one ``UnpackCodes`` node (domain :data:`DOMAIN`, attributes ``bits`` and ``shape``) whose output,
the int8 codes, feeds the layer's ``DequantizeLinear`` as before; codes are two's complement in ``bits`` bits,
little-endian bit order, the last byte zero-padded. Two fused nodes (written by
``export/passes/compact_graph.py``) spell a common pattern as one node: :data:`PACKED_DQ` is ``UnpackCodes``
then ``DequantizeLinear(scale, axis)`` (``axis`` 0 unless given), and :data:`QCDQ` an activation quantizer's
``QuantizeLinear(x, scale[, zero point]) -> Clip(lo, hi) -> DequantizeLinear(scale)`` (``lo`` 0 unless
given; no Clip without ``hi``).
:func:`unpack_initializers` expands them all back, so the executor compiles exactly the graph a plain QDQ
artifact has.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from sdk.errors import BundleError

__all__ = ["DOMAIN", "OP", "PACKED_DQ", "QCDQ", "pack_codes", "unpack_codes", "unpack_initializers"]

DOMAIN = "ai.bpnas"
OP = "UnpackCodes"
PACKED_DQ = "DequantizePacked"
QCDQ = "QCDQ"


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


def _expand_fused(model: onnx.ModelProto) -> None:
    """Replace every :data:`PACKED_DQ` and :data:`QCDQ` node by the standard nodes it stands for, in place."""
    inits = {t.name: t for t in model.graph.initializer}
    nodes: list[onnx.NodeProto] = []
    for n in model.graph.node:
        if n.domain != DOMAIN or n.op_type not in (PACKED_DQ, QCDQ):
            nodes.append(n)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        y = n.output[0]
        if n.op_type == PACKED_DQ:
            unpack = {k: attrs[k] for k in ("bits", "shape")}
            nodes.append(helper.make_node(OP, [n.input[0]], [f"{y}/codes"], domain=DOMAIN, **unpack))
            axis = int(attrs.get("axis", 0))  # per output channel unless said
            nodes.append(helper.make_node("DequantizeLinear", [f"{y}/codes", n.input[1]], [y], axis=axis))
            continue
        zp = n.input[2] if len(n.input) > 2 and n.input[2] else None
        dtype = numpy_helper.to_array(inits[zp]).dtype if zp in inits else np.dtype(np.uint8)
        codes = f"{y}/q"
        nodes.append(helper.make_node("QuantizeLinear", list(n.input[:3]), [codes]))
        if "hi" in attrs:
            bounds = [f"{y}/lo", f"{y}/hi"]
            for name, v in zip(bounds, (attrs.get("lo", 0), attrs["hi"])):
                model.graph.initializer.append(numpy_helper.from_array(np.array(v, dtype=dtype), name))
            nodes.append(helper.make_node("Clip", [codes, *bounds], [f"{y}/c"]))
            codes = f"{y}/c"
        nodes.append(helper.make_node("DequantizeLinear", [codes, n.input[1]], [y]))
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
        _expand_fused(out)
    except (KeyError, IndexError) as e:
        raise BundleError(f"integer artifact: a fused {DOMAIN} node lacks {e}; re-export the bundle.") from e
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
