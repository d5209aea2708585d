"""Recognising QuantizeLinear / Clip / DequantizeLinear patterns in a graph (torch-free)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto

from export._graph import INT_RANGES, Graph, attr, is_onnx_op

__all__ = [
    "QuantParams",
    "ActChain",
    "quant_params",
    "act_chains",
    "clip_bounds",
    "int_clip",
    "full_range",
    "quantize_value",
]


@dataclass(frozen=True)
class QuantParams:
    """Constant scale / zero point of a QuantizeLinear or DequantizeLinear node."""

    scale: np.ndarray  # float32, scalar or 1-D
    zero_point: np.ndarray  # same shape as scale, integer
    dtype: int  # ONNX data type of the integer side
    axis: int

    @property
    def per_tensor(self) -> bool:
        return self.scale.size == 1

    @property
    def per_tensor_8bit(self) -> bool:
        """One scale and 8-bit codes: an activation quantizer the QCDQ rewrites handle."""
        return self.per_tensor and self.dtype in (TensorProto.UINT8, TensorProto.INT8)

    def same_as(self, other: QuantParams) -> bool:
        return (
            self.dtype == other.dtype
            and (self.per_tensor or self.axis == other.axis)
            and np.array_equal(self.scale, other.scale)
            and np.array_equal(self.zero_point.astype(np.int64), other.zero_point.astype(np.int64))
        )


def quant_params(graph: Graph, node: onnx.NodeProto) -> QuantParams | None:
    """Scale/zero point of a Q or DQ node when both are initializers (zero point defaults to uint8 0)."""
    if not is_onnx_op(node, "QuantizeLinear", "DequantizeLinear"):
        return None
    scale = graph.const(node.input[1])
    if scale is None:
        return None
    if len(node.input) > 2 and node.input[2]:
        zp = graph.const(node.input[2])
        dtype = graph.const_type(node.input[2])
        if zp is None or dtype is None:
            return None
    else:
        if node.op_type == "DequantizeLinear":
            src = graph.const_type(node.input[0])
            dtype = src if src is not None else TensorProto.UINT8
        else:
            dtype = TensorProto.UINT8
        zp = np.zeros(scale.shape, dtype=np.int64)
    return QuantParams(scale.astype(np.float32), zp, int(dtype), int(attr(node, "axis", 1)))


def clip_bounds(graph: Graph, node: onnx.NodeProto) -> tuple[float | None, float | None] | None:
    """(min, max) of a Clip (or Relu) node with constant bounds; None entries are unbounded.

    Returns None when a bound is not a constant.
    """
    if node.op_type == "Relu":
        return 0.0, None
    if node.op_type != "Clip":
        return None
    out: list[float | None] = []
    for k in (1, 2):
        if len(node.input) > k and node.input[k]:
            v = graph.const(node.input[k])
            if v is None or v.size != 1:
                return None
            out.append(float(v.reshape(())))
        else:
            out.append(None)
    return out[0], out[1]


def int_clip(graph: Graph, node: onnx.NodeProto) -> tuple[int, int, int] | None:
    """(dtype, lo, hi) of a Clip whose bounds are integer constants of one 8-bit type."""
    if node.op_type != "Clip" or len(node.input) < 3:
        return None
    types = {graph.const_type(node.input[1]), graph.const_type(node.input[2])}
    if len(types) != 1 or (dtype := types.pop()) not in (TensorProto.UINT8, TensorProto.INT8):
        return None
    b = clip_bounds(graph, node)
    if b is None or b[0] is None or b[1] is None:
        return None
    return dtype, int(b[0]), int(b[1])


def full_range(dtype: int, lo: int, hi: int) -> bool:
    tlo, thi = INT_RANGES[dtype]
    return lo <= tlo and hi >= thi


def quantize_value(value: float, params: QuantParams) -> int:
    """QuantizeLinear of one float32 value (per-tensor params), ``saturate(round_half_even(value / scale) +
    zp)`` with the exact quotient, the specification's meaning (DESIGN §2): the float64 quotient of two
    float32 numbers decides that rounding exactly (float32 division can flip it on a near-tie)."""
    lo, hi = INT_RANGES[params.dtype]
    if np.isinf(value):
        return hi if value > 0 else lo
    scale = np.float64(params.scale.reshape(-1)[0].astype(np.float32))
    q = np.rint(np.float64(np.float32(value)) / scale) + int(params.zero_point.reshape(-1)[0])
    return int(min(max(q, lo), hi))


@dataclass
class ActChain:
    """An activation QCDQ: ``QuantizeLinear -> [Clip] -> DequantizeLinear(s)`` on a non-constant tensor.

    ``lo``/``hi`` are the effective integer bounds (the Clip's, else the container's). ``closed`` is True when
    every reader of the integer tensors is part of the chain (only then may a pass re-encode it).
    """

    q: onnx.NodeProto
    clip: onnx.NodeProto | None
    dqs: list[onnx.NodeProto]
    params: QuantParams
    lo: int
    hi: int
    closed: bool

    @property
    def source(self) -> str:
        return self.q.input[0]

    @property
    def codes(self) -> tuple[int, int]:
        """The code range relative to the zero point."""
        zp = int(self.params.zero_point.reshape(-1)[0])
        return self.lo - zp, self.hi - zp


def act_chains(graph: Graph) -> list[ActChain]:
    """Every per-tensor activation QCDQ chain in graph order."""
    chains = []
    for q in list(graph.g.node):
        if q.op_type != "QuantizeLinear" or graph.const(q.input[0]) is not None:
            continue
        params = quant_params(graph, q)
        if params is None or not params.per_tensor_8bit:
            continue
        lo, hi = INT_RANGES[params.dtype]
        clip = None
        closed = q.output[0] not in graph.outputs
        dqs = []
        for c in graph.consumers.get(q.output[0], []):
            if c.op_type == "Clip" and clip is None:
                b = clip_bounds(graph, c)
                if b is None:
                    closed = False
                    continue
                clip = c
                lo = max(lo, int(b[0])) if b[0] is not None else lo
                hi = min(hi, int(b[1])) if b[1] is not None else hi
            elif c.op_type == "DequantizeLinear":
                dqs.append(c)
            else:
                closed = False
        if clip is not None:
            if clip.output[0] in graph.outputs:
                closed = False
            for c in graph.consumers.get(clip.output[0], []):
                if c.op_type == "DequantizeLinear":
                    dqs.append(c)
                else:
                    closed = False
        for dq in dqs:
            p = quant_params(graph, dq)
            if p is None or not p.same_as(params):
                closed = False
        chains.append(ActChain(q, clip, dqs, params, lo, hi, closed))
    return chains
