"""Every hls4ml fixed-point type of a bpnas QONNX graph, derived from its quantizers so that nothing rounds.

hls4ml's ``ap_fixed<W, I>`` holds ``code * 2^-(W - I)``; a bpnas tensor with power-of-two scale ``2^-F`` and
integer codes in ``[lo, hi]`` is a :class:`Grid` and maps to exactly one such type. The walk below follows
the channels-last graph hls4ml reads and gives every tensor its grid: quantizers round half to even and
saturate (``AP_RND_CONV``, ``AP_SAT`` / ``AP_SAT_SYM``: the spec's rounding and clamp); everything else
(accumulators with their bias, ReLU, pools, residual sums, reshapes) gets a type wide enough to hold every
value it can take, so it never rounds or wraps. hls4ml's default ``ap_fixed<16,6>`` truncates silently
(hls4ml#640); here no tensor is left to it. What fixed point cannot express exactly (a scale that is not a
power of two, an average over a window that is not a power of two, an op hls4ml lacks) raises
:class:`~sdk.errors.ConfigError` naming the layer and the reason.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from sdk.errors import ConfigError

__all__ = ["Grid", "LayerPrecision", "derive_precisions", "SUPPORTED_OPS"]

#: ops of a bpnas QONNX graph (after qonnx's clean-up and channels-last conversion) hls4ml runs exactly
SUPPORTED_OPS = frozenset(
    {"Quant", "Conv", "MatMul", "Add", "Relu", "MaxPool", "AveragePool", "Flatten", "Reshape", "Transpose"}
)


@dataclass(frozen=True)
class Grid:
    """Values ``code * 2^-frac`` with integer ``code`` in ``[lo, hi]``; ``rounding``/``saturation`` are the
    ap_fixed modes used when a wider value is cast into it (only quantizers ever do)."""

    frac: int
    lo: int
    hi: int
    rounding: str = "TRN"
    saturation: str = "WRAP"

    @property
    def signed(self) -> bool:
        return self.lo < 0

    @property
    def width(self) -> int:
        if self.signed:
            return max(int(self.hi).bit_length(), int(-self.lo - 1).bit_length()) + 1
        return max(int(self.hi).bit_length(), 1)

    def hls(self) -> str:
        """The hls4ml precision string, e.g. ``fixed<4,2,RND_CONV,SAT_SYM>``."""
        kind = "fixed" if self.signed else "ufixed"
        return f"{kind}<{self.width},{self.width - self.frac},{self.rounding},{self.saturation}>"

    def rescaled(self, frac: int) -> Grid:
        """The same values on a finer grid (``frac >= self.frac``), as an exact (never rounding) type."""
        k = 1 << (frac - self.frac)
        return Grid(frac, self.lo * k, self.hi * k)


@dataclass(frozen=True)
class LayerPrecision:
    """One row of the precision table: an hls4ml layer (ONNX node) and its types by hls4ml config key."""

    node: str  # the ONNX node name hls4ml's config is keyed by
    layer: str  # the bpnas layer name (conv/linear), or the node's op type for others
    op: str
    types: Mapping[str, Grid]


def _pow2_exponent(scale: np.ndarray, where: str) -> np.ndarray:
    """``-log2(scale)`` per entry, or ConfigError when a scale is not an exact positive power of two."""
    s = np.asarray(scale, dtype=np.float64).reshape(-1)
    mant, exp = np.frexp(s)
    if not (np.all(s > 0) and np.all(mant == 0.5)):
        bad = float(s[(s <= 0) | (mant != 0.5)][0])
        raise ConfigError(
            f"hls4ml: {where} has quantization scale {bad!r}, not a power of two. hls4ml's fixed-point types "
            "hold power-of-two scales only; any other scale would be applied by a rounding multiply "
            "(ApplyAlpha), not bit-exactly. Calibrate with calibration.calibrate(..., power_of_two=True) "
            "(or calibration.round_scales_to_power_of_two_) and export again."
        )
    return 1 - exp  # scale = 0.5 * 2^exp = 2^(exp - 1)


def _codes(values: np.ndarray, frac: int, where: str) -> np.ndarray:
    """Integer codes of ``values`` on the grid ``2^-frac``; ConfigError when a value is off the grid."""
    c = np.asarray(values, dtype=np.float64) * 2.0**frac
    r = np.round(c)
    if not np.array_equal(c, r) or np.any(np.abs(r) >= 2.0**62):
        raise ConfigError(
            f"hls4ml: {where} holds values off its 2^-{frac} grid (e.g. a bias that is not a multiple of "
            "s_in * s_w), which no fixed-point type of that layer represents exactly; export refused."
        )
    return r.astype(np.int64)


class _Walk:
    """State of one pass over the graph: initializers, producer map, and the grid of every tensor so far."""

    def __init__(self, model: onnx.ModelProto, layer_names: Mapping[str, str]) -> None:
        self.model = model
        self.inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self.producer = {o: n for n in model.graph.node for o in n.output}
        self.layer_names = layer_names
        self.grids: dict[str, Grid] = {}
        self.rows: list[LayerPrecision] = []
        self.weights: dict[str, tuple[np.ndarray, Grid]] = {}  # weight tensor -> (codes, grid)

    def name(self, node: onnx.NodeProto) -> str:
        return self.layer_names.get(node.name, f"{node.op_type} {node.name}")

    def grid(self, tensor: str, node: onnx.NodeProto) -> Grid:
        if tensor not in self.grids:
            raise ConfigError(
                f"hls4ml: {self.name(node)} reads {tensor!r}, which no bpnas quantizer produced (a float "
                "input or a float op before it); hls4ml would run it at its default ap_fixed<16,6>, "
                "truncating. Quantize every layer (no 32-bit pairs) and export again."
            )
        return self.grids[tensor]

    def add(self, node: onnx.NodeProto, out: Grid, **extra: Grid) -> None:
        self.grids[node.output[0]] = out
        self.rows.append(LayerPrecision(node.name, self.name(node), node.op_type, {**extra, "result": out}))


def _attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _quant_grid(w: _Walk, node: onnx.NodeProto) -> tuple[Grid, np.ndarray]:
    """(the quantizer's grid at its finest scale, -log2 of every scale entry)."""
    bits = int(np.asarray(w.inits[node.input[3]]).reshape(()))
    zeropt = np.asarray(w.inits[node.input[2]])
    signed, narrow = int(_attr(node, "signed", 1)), int(_attr(node, "narrow", 0))
    where = w.name(node)
    if np.any(zeropt != 0) or _attr(node, "rounding_mode", b"ROUND") not in (b"ROUND", "ROUND"):
        raise ConfigError(f"hls4ml: {where} has a zero point or a rounding mode bpnas never writes; refused.")
    if signed:
        hi = 2 ** (bits - 1) - 1
        lo = -hi if narrow else -hi - 1
    else:
        lo, hi = 0, 2**bits - 1
    frac = _pow2_exponent(w.inits[node.input[1]], where)
    return Grid(int(frac.max()), lo, hi, "RND_CONV", "SAT_SYM" if narrow else "SAT"), frac


def _quant(w: _Walk, node: onnx.NodeProto) -> None:
    grid, frac = _quant_grid(w, node)
    where = w.name(node)
    if node.input[0] in w.inits:  # a weight: per-channel power-of-two scales share the finest grid
        codes = _codes(w.inits[node.input[0]], grid.frac, where)
        w.weights[node.output[0]] = (
            codes,
            Grid(grid.frac, int(codes.min(initial=0)), int(codes.max(initial=0))),
        )
        return
    if frac.size != 1:
        raise ConfigError(f"hls4ml: {where} has a per-channel activation scale; hls4ml needs one per tensor.")
    w.add(node, grid)


def _weight(w: _Walk, node: onnx.NodeProto, tensor: str) -> tuple[np.ndarray, Grid]:
    if tensor in w.weights:
        return w.weights[tensor]
    raise ConfigError(f"hls4ml: {w.name(node)} has weights without a bpnas weight quantizer; refused.")


def _accumulate(
    w: _Walk, node: onnx.NodeProto, codes: np.ndarray, wgrid: Grid, bias: np.ndarray | None
) -> None:
    """Conv/MatMul: exact products and sums of input and weight codes, plus the bias on the same grid.

    ``codes`` is (out_channels, fan_in). The bound per output channel is the sum over taps of the larger
    (resp. smaller) of w * x_lo and w * x_hi, so every partial sum fits too (0 is always a code)."""
    x = w.grid(node.input[0], node)
    frac = x.frac + wgrid.frac
    b = np.zeros(codes.shape[0], np.int64) if bias is None else _codes(bias, frac, f"{w.name(node)} bias")
    lo_terms = np.minimum(codes * x.lo, codes * x.hi).sum(axis=1)
    hi_terms = np.maximum(codes * x.lo, codes * x.hi).sum(axis=1)
    # with and without the bias: hls4ml may add a Gemm's bias after the product (an ApplyAlpha)
    lo = min(int(lo_terms.min()), int((lo_terms + b).min()), 0)
    acc = Grid(frac, lo, max(int(hi_terms.max()), int((hi_terms + b).max()), 0))
    bgrid = Grid(frac, min(int(b.min()), 0), max(int(b.max()), 0))
    w.add(node, acc, weight=wgrid, bias=bgrid, accum=acc)


def _conv(w: _Walk, node: onnx.NodeProto) -> None:
    if int(_attr(node, "group", 1)) != 1:
        raise ConfigError(
            f"hls4ml: {w.name(node)} is a grouped/depthwise convolution; hls4ml's ONNX front end converts "
            "only group=1 convolutions with constant weights. Refused."
        )
    codes, wgrid = _weight(w, node, node.input[1])
    bias = w.inits.get(node.input[2]) if len(node.input) > 2 else None
    if len(node.input) > 2 and bias is None:
        raise ConfigError(f"hls4ml: {w.name(node)} has a computed bias; refused.")
    _accumulate(w, node, codes.reshape(codes.shape[0], -1), wgrid, bias)


def _matmul(w: _Walk, node: onnx.NodeProto) -> None:
    codes, wgrid = _weight(w, node, node.input[1])
    _accumulate(w, node, codes.T, wgrid, None)  # (in, out) -> (out, in); the bias Add follows


def _add(w: _Walk, node: onnx.NodeProto) -> None:
    const = [i for i in node.input if i in w.inits]
    if const:  # the bias of a MatMul (Gemm split by qonnx): fold it into that accumulator's grid
        other = next(i for i in node.input if i not in w.inits)
        prev = w.rows[-1] if w.rows and w.rows[-1].node == w.producer[other].name else None
        if prev is None or prev.op != "MatMul":
            raise ConfigError(f"hls4ml: {w.name(node)} adds a constant to a non-linear tensor; refused.")
        acc = prev.types["accum"]
        b = _codes(w.inits[const[0]], acc.frac, f"{prev.layer} bias").reshape(-1)
        mm = w.producer[other]
        codes, wgrid = w.weights[mm.input[1]]
        w.rows.pop()
        _accumulate(w, mm, codes.T, wgrid, b.astype(np.float64) * 2.0**-acc.frac)
        w.grids[node.output[0]] = w.grids[other]
        row = w.rows[-1]  # hls4ml may keep this Add as an ApplyAlpha (scale 1) adding the bias: type it too
        types = {"bias": row.types["bias"], "result": row.types["result"]}
        w.rows.append(LayerPrecision(node.name, row.layer, "Add(bias)", types))
        return
    ga, gb = (w.grid(i, node) for i in node.input)
    f = max(ga.frac, gb.frac)
    ga, gb = ga.rescaled(f), gb.rescaled(f)
    w.add(node, Grid(f, ga.lo + gb.lo, ga.hi + gb.hi))


def _relu(w: _Walk, node: onnx.NodeProto) -> None:
    x = w.grid(node.input[0], node)
    w.add(node, Grid(x.frac, max(x.lo, 0), max(x.hi, 0)))


def _same(w: _Walk, node: onnx.NodeProto) -> None:
    x = w.grid(node.input[0], node)
    w.add(node, Grid(x.frac, x.lo, x.hi))


def _maxpool(w: _Walk, node: onnx.NodeProto) -> None:
    x = w.grid(node.input[0], node)
    out = Grid(x.frac, x.lo, x.hi)
    w.add(node, out, accum=out)


def _avgpool(w: _Walk, node: onnx.NodeProto) -> None:
    """hls4ml sums in ``accum_t`` then divides by the window size in place (``y /= n``): exact only when
    ``n = 2^k`` and ``accum_t`` has ``k`` more fraction bits than the input, which it gets here."""
    x = w.grid(node.input[0], node)
    kernel = [int(k) for k in _attr(node, "kernel_shape", [])]
    pads = [int(p) for p in _attr(node, "pads", [0] * 4)]
    n = math.prod(kernel)
    if n & (n - 1) or any(pads):
        raise ConfigError(
            f"hls4ml: {w.name(node)} averages {n} values{' with padding' if any(pads) else ''}; hls4ml "
            "divides in fixed point, which is exact only for an unpadded window of a power-of-two size. "
            "Use an input size whose last feature map has 2^k pixels, or export for the integer target."
        )
    k = n.bit_length() - 1
    sum_grid = Grid(x.frac + k, x.lo * n * n, x.hi * n * n)
    w.add(node, Grid(x.frac + k, x.lo * n, x.hi * n), accum=sum_grid)


_HANDLERS = {
    "Quant": _quant,
    "Conv": _conv,
    "MatMul": _matmul,
    "Add": _add,
    "Relu": _relu,
    "MaxPool": _maxpool,
    "AveragePool": _avgpool,
    "Flatten": _same,
    "Reshape": _same,
    "Transpose": _same,
}


def derive_precisions(
    model: onnx.ModelProto, layer_names: Mapping[str, str] | None = None
) -> tuple[Grid, list[LayerPrecision]]:
    """(the graph input's grid, one row per node) for a cleaned, channels-last bpnas QONNX graph.

    ``layer_names`` maps ONNX node names to bpnas layer names for messages and the table. The input's grid
    is its first quantizer's, so hls4ml's float -> ap_fixed conversion at the input *is* that quantizer."""
    w = _Walk(model, layer_names or {})
    graph_in = model.graph.input[0].name
    reader = next((n for n in model.graph.node if graph_in in n.input), None)
    while reader is not None and reader.op_type == "Transpose":  # the channels-last layout change
        reader = next((n for n in model.graph.node if reader.output[0] in n.input), None)
    if reader is None or reader.op_type != "Quant":
        raise ConfigError(
            "hls4ml: the model input is not read by a bpnas quantizer, so hls4ml would convert it at its "
            "default ap_fixed<16,6>, truncating; quantize the first layer's input and export again."
        )
    in_grid = _quant_grid(w, reader)[0]
    w.grids[graph_in] = in_grid
    for node in model.graph.node:
        if node.op_type not in _HANDLERS:
            raise ConfigError(
                f"hls4ml: {w.name(node)} is an ONNX {node.op_type}, which bpnas cannot hand to hls4ml "
                f"exactly (supported: {', '.join(sorted(SUPPORTED_OPS))}); export refused."
            )
        _HANDLERS[node.op_type](w, node)
    return in_grid, w.rows
