"""Per-op handlers of the integer compiler, keyed by ONNX op type (anything else is refused by name).

A handler reads its inputs' symbolic values from the :class:`~runtimes.integer.builder.Builder`, emits the
integer steps that must run now (conv/gemm accumulation, a pooled accumulator) and binds its output to a new
symbolic value; quantizers lower those values with :mod:`runtimes.integer.lower`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from fractions import Fraction
from functools import partial
from typing import Any

import numpy as np
import onnx

from runtimes.integer import kernels as K
from runtimes.integer.builder import Builder
from runtimes.integer.lower import codes_of, lowerable, requant
from runtimes.integer.ops import bias_add, clip_op, input_quant
from runtimes.integer.program import INPUT, LayerInfo, QuantizerInfo
from runtimes.integer.values import (
    Acc,
    Clip,
    Codes,
    Const,
    Deq,
    Flat,
    FloatInput,
    IntConst,
    Pool,
    Sum,
    attrs,
    code_of,
    frac,
)
from sdk.errors import BundleError

__all__ = ["HANDLERS", "Handler"]

Handler = Callable[[Builder, onnx.NodeProto, int], None]


def _set(c: Builder, node: onnx.NodeProto, value: Any) -> None:
    c.values[node.output[0]] = value


def _zero_point(c: Builder, node: onnx.NodeProto) -> type:
    zp = c.const(node, 2, "zero point")
    if zp is None:
        return np.uint8
    if np.any(zp != 0):
        raise c.fail(node, "has a nonzero zero point; bpnas quantization is symmetric (zero point 0).")
    return zp.dtype.type  # type: ignore[no-any-return]


def _scalar_scale(c: Builder, node: onnx.NodeProto) -> Fraction:
    s = c.const(node, 1, "scale")
    assert s is not None
    if s.size != 1 or not np.isfinite(s).all() or float(s.reshape(-1)[0]) <= 0:
        raise c.fail(node, f"activation scale must be one positive number (per-tensor), got shape {s.shape}.")
    return frac(s.reshape(-1)[0])


def _int_bound(c: Builder, node: onnx.NodeProto, i: int) -> int | None:
    v = c.const(node, i, "clip bound")
    return None if v is None else int(v.reshape(-1)[0])


def quantize_linear(c: Builder, node: onnx.NodeProto, idx: int) -> None:
    x = c.value(node, 0)
    s = _scalar_scale(c, node)
    dt = _zero_point(c, node)
    if dt not in (np.uint8, np.int8, np.int16, np.uint16):
        raise c.fail(node, f"quantizes to {np.dtype(dt).name}; expected int8/uint8 codes.")
    lo, hi = int(np.iinfo(dt).min), int(np.iinfo(dt).max)
    name = node.output[0]
    clip_name = None
    users = c.consumers.get(name, [])
    if len(users) == 1 and users[0][0].op_type == "Clip":  # QCDQ: fold the integer Clip into the clamp
        clip = users[0][0]
        a, b = _int_bound(c, clip, 1), _int_bound(c, clip, 2)
        lo, hi = max(lo, a if a is not None else lo), min(hi, b if b is not None else hi)
        clip_name = clip.output[0]
        c.skip.add(clip_name)
    inner = x
    while isinstance(inner, Clip):  # a float clip of the input ("float_clip" lowering) is a code clamp
        inner = inner.x
    if isinstance(inner, FloatInput):
        while isinstance(x, Clip):
            ca, cb = code_of(x.lo, s), code_of(x.hi, s)
            lo, hi = int(min(max(ca, lo), hi)), int(min(max(cb, lo), hi))
            x = x.x
        fn = partial(input_quant, s=float(s), lo=lo, hi=hi, dt=K.code_dtype(lo, hi))
        codes = Codes(c.emit(name, "QuantizeInput", (c.input_reg,), fn, "nhwc"), s, lo, hi, inner.shape)
    elif isinstance(x, (Const, IntConst)):
        raise c.fail(node, "quantizes a float initializer; weights must be stored as int8 codes (DESIGN §4).")
    else:
        codes = requant(c, x, s, lo, hi, name, node)
    c.values[name] = codes
    if clip_name is not None:
        c.values[clip_name] = codes
    c.codes_regs[name] = codes.reg
    consumers = []
    for user, _ in c.consumers.get(clip_name or name, []):
        if user.op_type == "DequantizeLinear":
            consumers += [(n.name, n.op_type, i) for n, i in c.consumers.get(user.output[0], [])]
    producer = c.producer.get(node.input[0])
    source = INPUT if node.input[0] == INPUT else (producer.name if producer is not None else node.input[0])
    c.quantizers.append(QuantizerInfo(name, float(s), lo, hi, tuple(consumers), source, clip_name))


def clip(c: Builder, node: onnx.NodeProto, idx: int) -> None:
    x = c.value(node, 0)
    at = attrs(node)
    if isinstance(x, Codes):
        a, b = _int_bound(c, node, 1), _int_bound(c, node, 2)
        lo, hi = max(x.lo, a if a is not None else x.lo), min(x.hi, b if b is not None else x.hi)
        reg = c.emit(node.name, "Clip", (x.reg,), partial(clip_op, lo=lo, hi=hi), c.layout(x.shape))
        _set(c, node, Codes(reg, x.scale, lo, hi, x.shape))
        return
    lo_c, hi_c = c.const(node, 1, "min"), c.const(node, 2, "max")
    lo_f = float(lo_c.reshape(-1)[0]) if lo_c is not None else float(at.get("min", -math.inf))
    hi_f = float(hi_c.reshape(-1)[0]) if hi_c is not None else float(at.get("max", math.inf))
    _set(c, node, _float_clip(c, node, x, lo_f, hi_f))


def _float_clip(c: Builder, node: onnx.NodeProto, x: Any, lo: float, hi: float) -> Clip:
    if not (lowerable(x) or isinstance(x, FloatInput)):
        raise c.fail(node, f"clips {type(x).__name__}, not a value between quantizers.")
    return Clip(x, lo, hi, x.shape)


def relu(c: Builder, node: onnx.NodeProto, idx: int) -> None:
    _set(c, node, _float_clip(c, node, c.value(node, 0), 0.0, math.inf))


def dequantize_linear(c: Builder, node: onnx.NodeProto, idx: int) -> None:
    x = c.value(node, 0)
    _zero_point(c, node)
    if isinstance(x, Const):
        if x.value.dtype.kind not in "iu":
            raise c.fail(node, f"dequantizes a {x.value.dtype} initializer; expected int8/int32 codes.")
        scale = c.const(node, 1, "scale")
        assert scale is not None
        axis = int(attrs(node).get("axis", 1))
        _set(c, node, IntConst(x.value.astype(np.int64), scale.astype(np.float32).reshape(-1), axis))
    elif isinstance(x, Codes):
        _set(c, node, Deq(x, _scalar_scale(c, node), x.shape))
    else:
        raise c.fail(node, f"dequantizes {type(x).__name__}; expected codes or an integer initializer.")


def _bits_of(c: Builder, name: str, w_max: int, codes: Codes) -> tuple[int, int]:
    a = max(1, codes.hi.bit_length()) if codes.lo == 0 else max(-codes.lo, codes.hi).bit_length() + 1
    w = max(2, w_max.bit_length() + 1)
    if name in c.layer_bits:
        wb, ab = (int(b) for b in c.layer_bits[name])
        if w_max > 2 ** (wb - 1) - 1:
            raise BundleError(f"layer {name!r}: weight codes reach {w_max}, beyond the config's {wb} bits.")
        return wb, ab
    return w, a


def _weights(c: Builder, node: onnx.NodeProto, i: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
    w = c.value(node, i)
    if not isinstance(w, IntConst) or w.codes.dtype.kind not in "iu":
        raise c.fail(
            node, "its weight is not DequantizeLinear(int8 codes); float weights cannot run on integers."
        )
    if w.scale.size != 1 and w.axis % w.codes.ndim != axis:
        raise c.fail(node, f"weight scales must be per-tensor or per output channel (axis {axis}).")
    return w.codes, w.scale


def _linear_layer(
    c: Builder, node: onnx.NodeProto, codes: Codes, w: np.ndarray, w_scale: np.ndarray, bias_i: int,
    groups: int = 1,
) -> tuple[list[Fraction], np.ndarray | None, list[Fraction] | None, int, int]:  # fmt: skip
    """Accumulator scales, int32 bias on the accumulator grid and what it leaves out of the exact bias
    ``q_b * s_b`` (s_b is the float32 rounding of s_in * s_w), proven bound and max |a| of a conv/gemm whose
    weight codes ``w`` are (groups, K, Cout / groups)."""
    _, k, cog = w.shape
    cout = groups * cog
    sw = np.broadcast_to(w_scale, (cout,))
    scales = [codes.scale * frac(x) for x in sw]
    bias, residual = _bias(c, node, c.value(node, bias_i), scales)
    a_max = max(abs(codes.lo), abs(codes.hi))
    l1 = np.abs(w).sum(axis=1).reshape(cout)  # per output channel: sum_k |w_ck|
    bias_abs = np.abs(bias) if bias is not None else np.zeros(cout, dtype=np.int64)
    bound = int(max(int(x) * a_max + int(y) for x, y in zip(l1, bias_abs)))
    w_max = int(np.abs(w).max()) if w.size else 0
    coarse = K.accumulator_bound(k, w_max, a_max, int(bias_abs.max()) if cout else 0)
    if bound >= K.ACC_LIMIT:
        raise c.fail(
            node, f"its accumulator bound {bound} reaches 2^31: it does not fit the int32 accumulator."
        )
    wb, ab = _bits_of(c, node.name, w_max, codes)
    c.layers.append(LayerInfo(node.name, node.op_type, wb, ab, k, bound, coarse, ""))
    return scales, bias, residual, bound, a_max


def _bias(
    c: Builder, node: onnx.NodeProto, b: Any, scales: list[Fraction]
) -> tuple[np.ndarray | None, list[Fraction] | None]:
    """The bias codes moved onto the accumulator grid (int), and the exact remainder per channel."""
    if b is None:
        return None, None
    if not isinstance(b, IntConst) or b.codes.size not in (1, len(scales)):
        raise c.fail(node, "its bias is not DequantizeLinear(int32 codes) per output channel (DESIGN §4).")
    exact = [
        Fraction(int(q)) * frac(s)
        for q, s in zip(
            np.broadcast_to(b.codes.reshape(-1), (len(scales),)), np.broadcast_to(b.scale, (len(scales),))
        )
    ]
    codes = [round(e / sa) for e, sa in zip(exact, scales)]
    residual = [e - q * sa for e, q, sa in zip(exact, codes, scales)]
    return np.array(codes, dtype=np.int64), (residual if any(residual) else None)


def _container(c: Builder, desc: str) -> None:
    c.layers[-1] = dataclasses.replace(c.layers[-1], gemm=desc)


def _describe(weights: K.IntWeights) -> str:
    pieces = len(weights.splits) - 1
    return "float32" if pieces == 1 and weights.acc_dtype is np.float32 else f"float32x{pieces}->float64"


def conv(c: Builder, node: onnx.NodeProto, idx: int) -> None:
    codes = codes_of(c, c.value(node, 0), node)
    w, ws = _weights(c, node, 1, 0)
    at = attrs(node)
    if at.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID") or w.ndim != 4:
        raise c.fail(node, "only 2-D convolutions with explicit pads are supported.")
    cout, cg, kh, kw = w.shape
    groups = int(at.get("group", 1))
    strides = tuple(at.get("strides", (1, 1)))
    pads = tuple(at.get("pads", (0, 0, 0, 0)))
    dil = tuple(at.get("dilations", (1, 1)))
    cin, h, wd = codes.shape
    if cg * groups != cin or cout % groups:
        raise c.fail(node, f"weight expects {cg * groups} input channels, input has {cin}.")
    og = cout // groups
    # (groups, K, Cout / groups) with K ordered (kh, kw, Cin / groups), as im2col lays out the columns
    wg = np.stack([w[g * og : (g + 1) * og].transpose(2, 3, 1, 0).reshape(-1, og) for g in range(groups)])
    scales, bias, residual, bound, a_max = _linear_layer(c, node, codes, wg, ws, 2, groups)
    geometry: dict[str, Any] = {"kernel": (kh, kw), "strides": strides, "pads": pads, "dilations": dil}
    fn: Callable[..., np.ndarray]
    if groups == cin == cout:  # depthwise: per-tap multiply-add
        dtype = K.exact_float_dtype(bound)
        wm = np.ascontiguousarray(wg[:, :, 0].T.astype(dtype))  # (kh*kw, C)
        fn = partial(K.depthwise_conv2d, w=wm, bias=None if bias is None else bias.astype(dtype), **geometry)
        _container(c, f"depthwise-{np.dtype(dtype).name}")
    else:
        weights = K.IntWeights.prepare(wg, a_max, bound)
        b_acc: np.ndarray | None = None if bias is None else bias.astype(weights.acc_dtype)
        fn = partial(K.conv2d, weights=weights, bias=b_acc, **geometry)
        _container(c, _describe(weights))
    ho = (h + pads[0] + pads[2] - dil[0] * (kh - 1) - 1) // strides[0] + 1
    wo = (wd + pads[1] + pads[3] - dil[1] * (kw - 1) - 1) // strides[1] + 1
    reg = c.emit(node.name, "Conv", (codes.reg,), fn, "nhwc")
    _set(c, node, Acc(reg, scales, bound, (cout, ho, wo), residual))


def _gemm_like(c: Builder, node: onnx.NodeProto, trans_b: bool, bias_i: int) -> None:
    codes = codes_of(c, c.value(node, 0), node)
    if len(codes.shape) != 1:
        raise c.fail(node, f"expects a 2-D input (N, K); got (N, {', '.join(map(str, codes.shape))}).")
    w, ws = _weights(c, node, 1, 0 if trans_b else 1)
    if w.ndim != 2:
        raise c.fail(node, "expects a 2-D weight.")
    wk = (w.T if trans_b else w)[None]  # (1, K, Cout)
    scales, bias, residual, bound, a_max = _linear_layer(c, node, codes, wk, ws, bias_i)
    weights = K.IntWeights.prepare(wk, a_max, bound)
    _container(c, _describe(weights))
    fn = partial(K.gemm, weights=weights, bias=None if bias is None else bias.astype(weights.acc_dtype))
    reg = c.emit(node.name, node.op_type, (codes.reg,), fn, "nf")
    _set(c, node, Acc(reg, scales, bound, (wk.shape[2],), residual))


def gemm(c: Builder, node: onnx.NodeProto, idx: int) -> None:
    at = attrs(node)
    if at.get("transA", 0) or float(at.get("alpha", 1.0)) != 1.0 or float(at.get("beta", 1.0)) != 1.0:
        raise c.fail(node, "only Gemm with transA=0, alpha=1, beta=1 is supported.")
    _gemm_like(c, node, bool(at.get("transB", 0)), 2)


def matmul(c: Builder, node: onnx.NodeProto, idx: int) -> None:
    _gemm_like(c, node, False, 99)


def add(c: Builder, node: onnx.NodeProto, idx: int) -> None:
    a, b = c.value(node, 0), c.value(node, 1)
    if isinstance(b, Acc) and isinstance(a, IntConst):
        a, b = b, a
    if isinstance(a, Acc) and isinstance(b, IntConst) and a.offset is None:  # MatMul + bias
        bias, residual = _bias(c, node, b, a.scales)
        assert bias is not None
        bound = a.bound + int(np.abs(bias).max())
        if bound >= K.ACC_LIMIT:
            raise c.fail(node, f"the accumulator bound {bound} reaches 2^31.")
        fn = partial(bias_add, bias=bias.astype(K.exact_float_dtype(bound)))
        reg = c.emit(node.name, "BiasAdd", (a.reg,), fn, c.layout(a.shape))
        _set(c, node, Acc(reg, a.scales, bound, a.shape, residual))
        return
    for v in (a, b):
        if not lowerable(v):
            raise c.fail(node, f"adds {type(v).__name__}; only quantized operands can be added exactly.")
    if a.shape != b.shape:
        raise c.fail(node, f"adds shapes {a.shape} and {b.shape}; broadcasting is not supported.")
    _set(c, node, Sum((a, b), a.shape))


def _pool_geometry(
    c: Builder, node: onnx.NodeProto, x: Any
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int, int, int], tuple[int, int, int]]:
    at = attrs(node)
    if (
        at.get("ceil_mode", 0)
        or any(d != 1 for d in at.get("dilations", (1, 1)))
        or at.get("storage_order", 0)
    ):
        raise c.fail(node, "ceil_mode, dilations and storage_order are not supported.")
    if at.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID"):
        raise c.fail(node, "auto_pad is not supported; export explicit pads.")
    kernel = tuple(at["kernel_shape"])
    strides = tuple(at.get("strides", (1, 1)))
    pads = tuple(at.get("pads", (0, 0, 0, 0)))
    ch, h, w = x.shape
    ho = (h + pads[0] + pads[2] - kernel[0]) // strides[0] + 1
    wo = (w + pads[1] + pads[3] - kernel[1]) // strides[1] + 1
    return kernel, strides, pads, (ch, ho, wo)  # type: ignore[return-value]


def _spatial(c: Builder, node: onnx.NodeProto) -> Any:
    x = c.value(node, 0)
    if not lowerable(x) or len(x.shape) != 3:
        raise c.fail(node, "pools a tensor that is not a 4-D value between quantizers.")
    return x


def max_pool(c: Builder, node: onnx.NodeProto, idx: int) -> None:
    x = _spatial(c, node)
    kernel, strides, pads, shape = _pool_geometry(c, node, x)
    clip, inner = (x, x.x) if isinstance(x, Clip) else (None, x)
    if isinstance(inner, Acc):
        # value = acc * s_c + o_c is increasing in acc and clipping is monotone, so pool the accumulator once
        # (before any requantization, on 1/stride^2 of the elements) and keep the clip pending
        fn = partial(K.max_pool, kernel=kernel, strides=strides, pads=pads, pad_value=-(inner.bound + 1))
        reg = c.emit(node.name, "MaxPool", (inner.reg,), fn, "nhwc")
        pooled = Acc(reg, inner.scales, inner.bound, shape, inner.offset)
        _set(c, node, pooled if clip is None else Clip(pooled, clip.lo, clip.hi, shape))
        return
    _set(c, node, Pool(x, "max", kernel, strides, pads, shape))


def average_pool(c: Builder, node: onnx.NodeProto, idx: int) -> None:
    x = _spatial(c, node)
    kernel, strides, pads, shape = _pool_geometry(c, node, x)
    if any(pads) and not attrs(node).get("count_include_pad", 0):
        raise c.fail(node, "padded average pooling must use count_include_pad=1 (a constant divisor).")
    _set(c, node, Pool(x, "avg", kernel, strides, pads, shape))


def global_average_pool(c: Builder, node: onnx.NodeProto, idx: int) -> None:
    x = _spatial(c, node)
    _set(c, node, Pool(x, "avg", None, (1, 1), (0, 0, 0, 0), (x.shape[0], 1, 1)))


def reduce_mean(c: Builder, node: onnx.NodeProto, idx: int) -> None:
    x = _spatial(c, node)
    at = attrs(node)
    axes_c = c.const(node, 1, "axes")
    axes = sorted(int(a) % 4 for a in (axes_c.reshape(-1) if axes_c is not None else at.get("axes", ())))
    if axes != [2, 3]:
        raise c.fail(node, f"reduces axes {axes}; only the spatial mean (axes 2, 3) is supported.")
    pool = Pool(x, "avg", None, (1, 1), (0, 0, 0, 0), (x.shape[0], 1, 1))
    _set(c, node, pool if at.get("keepdims", 1) else Flat(pool, (x.shape[0],)))


def _flat(c: Builder, node: onnx.NodeProto, x: Any) -> None:
    if len(x.shape) == 1:
        _set(c, node, x)
    else:
        _set(c, node, Flat(x, (math.prod(x.shape),)))


def flatten(c: Builder, node: onnx.NodeProto, idx: int) -> None:
    if int(attrs(node).get("axis", 1)) != 1:
        raise c.fail(node, "only Flatten(axis=1) is supported.")
    _flat(c, node, c.value(node, 0))


def reshape(c: Builder, node: onnx.NodeProto, idx: int) -> None:
    x = c.value(node, 0)
    shape = c.const(node, 1, "shape")
    assert shape is not None
    total = math.prod(x.shape)
    if shape.size != 2 or int(shape[1]) not in (-1, total):
        raise c.fail(node, f"reshapes to {shape.tolist()}; only flattening to (N, {total}) is supported.")
    _flat(c, node, x)


def squeeze(c: Builder, node: onnx.NodeProto, idx: int) -> None:
    x = c.value(node, 0)
    if len(x.shape) != 3 or x.shape[1:] != (1, 1):
        raise c.fail(node, "only squeezing a (N, C, 1, 1) tensor to (N, C) is supported.")
    _flat(c, node, x)


def identity(c: Builder, node: onnx.NodeProto, idx: int) -> None:
    _set(c, node, c.value(node, 0))


HANDLERS: dict[str, Handler] = {
    "QuantizeLinear": quantize_linear,
    "DequantizeLinear": dequantize_linear,
    "Clip": clip,
    "Relu": relu,
    "Conv": conv,
    "Gemm": gemm,
    "MatMul": matmul,
    "Add": add,
    "MaxPool": max_pool,
    "AveragePool": average_pool,
    "GlobalAveragePool": global_average_pool,
    "ReduceMean": reduce_mean,
    "Flatten": flatten,
    "Reshape": reshape,
    "Squeeze": squeeze,
    "Identity": identity,
    "Dropout": identity,
}
