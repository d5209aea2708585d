"""Kernels of the integer runtime: dyadic requantization, exact integer GEMM through BLAS, pooling.

Every array that holds integers here holds them *exactly*, whatever its container:

- Activation codes are uint8/int8 (int16/int32 only for odd ranges).
- Accumulators live in float32 when the layer's proven bound (:func:`accumulator_bound`) is below 2^24, else
  in float64 (bound below 2^53). Each partial sum of an integer dot product is an integer no larger in
  magnitude than the sum of the absolute products, which the bound covers, so every partial sum is
  representable and BLAS computes it exactly in any summation order (with or without FMA).
- Requantization multiplies by a dyadic number ``M = m * 2^-shift`` and rounds half to even. It runs in
  float64 when :func:`plan_rescale` proves that each product ``q * m`` and each partial sum stays below 2^53
  (then ``np.rint`` rounds the exact rational), or, for a single clamped term, that every input whose product
  is not exact saturates anyway (``(R + 1) * 2^shift <= 2^53``, R the largest |code|: such inputs have
  ``|q * M| >= 2^(53-shift) >= R + 1`` and clamp to the same code exactly or not). Otherwise it runs on int64
  with an explicit round-half-even shift (:func:`round_shift_half_even`). Both paths give the same integers as
  ``clamp(round_half_even(sum(q_i * m_i) / 2^shift), lo, hi)``, which the tests check against exact rationals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "ACC_LIMIT",
    "MIN_MULTIPLIER_BITS",
    "Dyadic",
    "RescalePlan",
    "accumulator_bound",
    "code_dtype",
    "IntWeights",
    "conv2d",
    "depthwise_conv2d",
    "exact_splits",
    "exact_float_dtype",
    "log2_floor",
    "gemm",
    "max_pool",
    "plan_rescale",
    "rescale",
    "round_shift_half_even",
    "window_sum",
]

ACC_LIMIT = 2**31  # |acc| < 2^31: an int32 accumulator
MIN_MULTIPLIER_BITS = 31  # requantization multipliers carry at least this much precision (or are exact)
MAX_SHIFT = 62  # int64 shifts
_F64 = 2**53
_I64 = 2**63


def accumulator_bound(k: int, w_max: int, a_max: int, bias_max: int = 0) -> int:
    """Largest |acc| a K-term dot product of codes can reach: ``K * max|w| * max|a| + max|bias|``."""
    return int(k) * int(w_max) * int(a_max) + int(bias_max)


def exact_float_dtype(bound: int) -> type[np.floating]:
    """The narrowest float type in which every integer of magnitude <= ``bound`` (and every partial sum of
    a dot product bounded by it) is exact: float32 below 2^24, float64 below 2^53."""
    if bound < 2**24:
        return np.float32
    if bound < _F64:
        return np.float64
    raise ValueError(f"accumulator bound {bound} >= 2^53 cannot be computed exactly through float BLAS")


def code_dtype(lo: int, hi: int) -> type[np.integer]:
    """Smallest integer container for codes in [lo, hi]."""
    for dt in (np.uint8, np.int8, np.int16, np.int32):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return dt
    return np.int64


# -- dyadic multipliers --------------------------------------------------------------------------------------
def log2_floor(x: Fraction) -> int:
    """floor(log2(x)) of a positive rational, exactly."""
    n, d = x.numerator, x.denominator
    e = n.bit_length() - d.bit_length()  # floor(log2 x) is e or e - 1
    return e if (n << max(-e, 0)) >= (d << max(e, 0)) else e - 1


@dataclass(frozen=True)
class Dyadic:
    """The number ``m * 2^-shift`` (m >= 0)."""

    m: int
    shift: int

    @classmethod
    def approx(cls, x: Fraction, bits: int) -> Dyadic:
        """``x`` (>= 0) rounded half-even to a multiplier of exactly ``bits`` significant bits."""
        if x < 0:
            raise ValueError("dyadic multipliers are non-negative; the scales are positive")
        if x == 0:
            return cls(0, 0)
        shift = bits - 1 - log2_floor(x)
        m = round(x * Fraction(2) ** shift)
        if m >= 1 << bits:  # rounding carried into a new bit
            shift -= 1
            m = round(x * Fraction(2) ** shift)
        return cls(int(m), shift)

    def fraction(self) -> Fraction:
        return Fraction(self.m) * Fraction(2) ** -self.shift

    def __float__(self) -> float:
        return float(np.ldexp(np.float64(self.m), -self.shift))


def round_shift_half_even(x: np.ndarray, shift: np.ndarray | int) -> np.ndarray:
    """``round_half_even(x / 2^shift)`` on int64, exactly (shift >= 0, per element or broadcast)."""
    s = np.asarray(shift, dtype=np.int64)
    if np.any(s < 0):
        raise ValueError("round_shift_half_even needs shift >= 0")
    q = x >> s  # floor division, also for negative x
    r = x - (q << s)  # remainder in [0, 2^shift)
    half = np.left_shift(np.int64(1), np.maximum(s - 1, 0))  # shift 0: r == 0 < 1, no rounding
    up = (r > half) | ((r == half) & (s > 0) & ((q & 1) == 1))
    return q + up


@dataclass(frozen=True)
class RescalePlan:
    """How to compute ``clamp(round_half_even(sum_i q_i * M_i + R), lo, hi)`` exactly.

    ``mults[i]`` holds term i's per-channel int64 multipliers m and ``shifts`` the per-channel shifts, so
    ``M_i = m_i * 2^-shift``; ``offset`` is the per-channel constant R as ``r * 2^-shift`` (int64 r);
    ``f64_mults``/``f64_offset`` are the same numbers as (exact) float64. ``path`` is "f64" or "i64".
    ``min_bits`` is the precision of the least precise rounded multiplier (None when all are exact).
    """

    path: str
    mults: tuple[np.ndarray, ...]
    shifts: np.ndarray
    offset: np.ndarray | None
    f64_mults: tuple[np.ndarray, ...]
    f64_offset: np.ndarray | None
    min_bits: int | None


def _round_div(n: int, d: int) -> int:
    """round_half_even(n / d) for d > 0, on integers."""
    q, r = divmod(n, d)
    return q + (2 * r > d or (2 * r == d and q & 1))


def _channel_plan(
    col: Sequence[Fraction], bounds: Sequence[int], clamp_max: int | None, path: str, offset: Fraction
) -> tuple[list[int], int, int] | None:
    """(multipliers, offset numerator, shift) with the largest shift the path's exactness argument allows.

    The start is estimated in floating point; every condition is then checked exactly on integers."""
    limit = _F64 if path == "f64" else _I64
    total = sum(b * abs(float(x)) for b, x in zip(bounds, col)) + abs(float(offset))
    if total == 0:
        return [0] * len(col), 0, 0
    shift = math.floor(math.log2((limit - 1) / total)) + 1
    saturating = path == "f64" and clamp_max is not None and len(col) == 1
    reach = (clamp_max or 0) + 1 + math.ceil(abs(offset))  # |result| beyond which the clamp decides alone
    if saturating:  # inexact products then lie beyond the clamp: reach * 2^shift <= 2^53
        shift = max(shift, math.floor(math.log2(_F64 / reach)) + 1)
    shift = min(shift, MAX_SHIFT)
    fracs = [(x.numerator, x.denominator) for x in col]
    while shift >= 0:
        ms = [_round_div(n << shift, d) for n, d in fracs]
        mo = _round_div(offset.numerator << shift, offset.denominator)
        if path == "i64" or all(abs(m) < _F64 for m in ms):
            if sum(b * abs(m) for b, m in zip(bounds, ms)) + abs(mo) < limit:
                return ms, mo, shift
            if saturating and reach << shift <= _F64:
                return ms, mo, shift
        shift -= 1
    return None


def plan_rescale(
    ratios: Sequence[Sequence[Fraction]],
    bounds: Sequence[int],
    clamp_max: int | None,
    offset: Sequence[Fraction] | None = None,
    *,
    paths: Sequence[str] = ("f64", "i64"),
) -> RescalePlan:
    """Choose per-channel multipliers for ``sum_i q_i * ratios[i][c] + offset[c]`` with |q_i| <= bounds[i].

    ``ratios[i]`` (and ``offset``) have one entry per channel, or one for all. ``clamp_max`` is
    max(|lo|, |hi|) of the output clamp (None: no clamp). Tries ``paths`` in order (float64 first: faster)
    and raises when none keeps MIN_MULTIPLIER_BITS of precision in every multiplier that is not exact.
    """
    channels = max([len(r) for r in ratios] + [len(offset) if offset is not None else 1])
    per = [[r[c] if len(r) > 1 else r[0] for c in range(channels)] for r in ratios]
    offs = [offset[c] if len(offset) > 1 else offset[0] for c in range(channels)] if offset else None
    for path in paths:
        mults: list[list[int]] = [[] for _ in ratios]
        moffs: list[int] = []
        shifts: list[int] = []
        min_bits: int | None = None
        for c in range(channels):
            col = [p[c] for p in per]
            found = _channel_plan(col, bounds, clamp_max, path, offs[c] if offs else Fraction(0))
            if found is None:
                break
            ms, mo, shift = found
            for i, (m, x) in enumerate(zip(ms, col)):
                mults[i].append(m)
                if m * x.denominator != x.numerator << shift:  # m / 2^shift != x
                    bits = abs(m).bit_length()
                    min_bits = bits if min_bits is None else min(min_bits, bits)
            moffs.append(mo)
            shifts.append(shift)
        else:
            if min_bits is None or min_bits >= MIN_MULTIPLIER_BITS:
                sh = np.array(shifts, dtype=np.int64)
                ms_arr = tuple(np.array(m, dtype=np.int64) for m in mults)
                f64 = tuple(np.ldexp(m.astype(np.float64), -sh) for m in ms_arr)
                off = np.array(moffs, dtype=np.int64) if offs else None
                f64_off = np.ldexp(off.astype(np.float64), -sh) if off is not None else None
                return RescalePlan(path, ms_arr, sh, off, f64, f64_off, min_bits)
    raise ValueError(
        f"no exact requantization with >= {MIN_MULTIPLIER_BITS}-bit multipliers for inputs bounded by "
        f"{list(bounds)} and scale ratios {[float(p[0]) for p in per]}"
    )


def rescale(
    terms: Sequence[np.ndarray], plan: RescalePlan, lo: int | None, hi: int | None, out_dtype: type
) -> np.ndarray:
    """``clamp(round_half_even(sum_i terms[i] * M_i + R), lo, hi)``; the channel is every term's last axis."""
    if plan.path == "f64":
        y = np.multiply(terms[0], plan.f64_mults[0], dtype=np.float64)
        for t, m in zip(terms[1:], plan.f64_mults[1:]):
            y += np.multiply(t, m, dtype=np.float64)
        if plan.f64_offset is not None:
            y += plan.f64_offset
        np.rint(y, out=y)
        if lo is not None or hi is not None:
            np.clip(y, lo, hi, out=y)
        return y if out_dtype is np.float64 else y.astype(out_dtype)
    acc = terms[0].astype(np.int64) * plan.mults[0]
    for t, m in zip(terms[1:], plan.mults[1:]):
        acc += t.astype(np.int64) * m
    if plan.offset is not None:
        acc += plan.offset
    out = round_shift_half_even(acc, plan.shifts)
    if lo is not None or hi is not None:
        np.clip(out, lo, hi, out=out)
    return out.astype(out_dtype)


# -- convolution and GEMM ------------------------------------------------------------------------------------
F32_LIMIT = 2**24  # integers (and partial sums) below this are exact in float32
BLOCK_BYTES = 8 << 20  # im2col block size: big enough for an efficient GEMM, small enough to stay in cache
BLOCK_ROWS = 2048

Epilogue = Callable[[np.ndarray], np.ndarray]


def _pad(x: np.ndarray, pads: tuple[int, int, int, int], value: float | int = 0) -> np.ndarray:
    t, l, b, r = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), constant_values=value)


def _out_size(size: int, k: int, stride: int, dilation: int, pad: int) -> int:
    return (size + pad - dilation * (k - 1) - 1) // stride + 1


def exact_splits(w_abs: np.ndarray, a_max: int, limit: int = F32_LIMIT) -> tuple[int, ...]:
    """Boundaries along K (rows of the (K, Cout) |weight| matrix) such that every channel's partial dot
    product over one piece is bounded by ``sum |w| * a_max < limit``: each piece is an exact float32 GEMM."""
    k = w_abs.shape[0]
    if int(w_abs.sum(axis=0, dtype=np.int64).max(initial=0)) * a_max < limit:
        return (0, k)
    cum = np.concatenate([np.zeros((1, w_abs.shape[1]), np.int64), np.cumsum(w_abs.astype(np.int64), axis=0)])
    cuts = [0]
    while cuts[-1] < k:
        start = cuts[-1]
        over = ((cum[start + 1 :] - cum[start]) * a_max >= limit).any(axis=1)
        first = int(np.argmax(over)) if over.any() else k - start
        if first == 0:
            raise ValueError(
                f"a single weight row times {a_max} reaches {limit}; no exact float32 split exists"
            )
        cuts.append(start + first)
    return tuple(cuts)


@dataclass(frozen=True)
class IntWeights:
    """Weight codes as float32 GEMM operands, cut along K so each partial dot product is exact in float32;
    partials (when there are several) add up in float64, exact below 2^53."""

    w: np.ndarray  # (groups, K, Cout / groups) float32
    splits: tuple[int, ...]
    acc_dtype: type  # float32 with one piece and a bound below 2^24 (bias included), else float64

    @classmethod
    def prepare(cls, w: np.ndarray, a_max: int, bound: int) -> IntWeights:
        """``w`` is (groups, K, Cout / groups) integer codes; ``bound`` the layer's accumulator bound."""
        groups, k, cog = w.shape
        w_abs = np.abs(w).transpose(1, 0, 2).reshape(k, groups * cog)
        splits = exact_splits(w_abs, max(a_max, 1))
        acc = np.float32 if len(splits) == 2 and bound < F32_LIMIT else np.float64
        return cls(np.ascontiguousarray(w.astype(np.float32)), splits, acc)

    def matmul(self, cols: np.ndarray, g: int = 0) -> np.ndarray:
        w = self.w[g]
        s = self.splits
        if len(s) == 2:
            out = np.matmul(cols, w)
            return out if self.acc_dtype is np.float32 else out.astype(np.float64)
        acc = np.matmul(cols[:, s[0] : s[1]], w[s[0] : s[1]]).astype(np.float64)
        for a, b in zip(s[1:-1], s[2:]):
            acc += np.matmul(cols[:, a:b], w[a:b])
        return acc


def _blocks(n: int, ho: int, wo: int, rows: int) -> list[tuple[int, int, int, int]]:
    """(image start, image end, row start, row end) blocks of at most ``rows`` output pixels (whole output
    rows, or whole images when an image fits)."""
    if ho * wo > rows:
        rb = max(1, rows // wo)
        return [(i, i + 1, r, min(ho, r + rb)) for i in range(n) for r in range(0, ho, rb)]
    nb = max(1, rows // (ho * wo))
    return [(i, min(n, i + nb), 0, ho) for i in range(0, n, nb)]


def conv2d(
    x: np.ndarray,
    weights: IntWeights,
    *,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    pads: tuple[int, int, int, int],
    dilations: tuple[int, int],
    bias: np.ndarray | None = None,
    epilogue: Epilogue | None = None,
) -> np.ndarray:
    """Integer conv of NHWC codes by im2col in cache-sized blocks (BLAS threads split each GEMM); each
    block's accumulator (+ bias) goes through ``epilogue`` (the fused requantization) while it is still in
    cache. Returns NHWC."""
    n, h, wd, c = x.shape
    kh, kw = kernel
    sh, sw = strides
    dh, dw = dilations
    groups, kdim, cog = weights.w.shape
    cg = c // groups
    ho = _out_size(h, kh, sh, dh, pads[0] + pads[2])
    wo = _out_size(wd, kw, sw, dw, pads[1] + pads[3])
    xp = _pad(x, pads)
    rows = max(64, min(BLOCK_ROWS, BLOCK_BYTES // (4 * kdim)))
    xw = None
    if groups == 1 and kw > 1 and c < 16:  # few channels (the stem): gather whole kernel rows at once
        win = sliding_window_view(xp, (kw - 1) * dw + 1, axis=2)[:, :, : sw * (wo - 1) + 1 : sw, :, ::dw]
        xw = np.ascontiguousarray(win.transpose(0, 1, 2, 4, 3), dtype=np.float32)  # (N, Hp, Wo, kw, C)
    out: list[np.ndarray] = []

    def work(block: tuple[int, int, int, int]) -> None:
        n0, n1, r0, r1 = block
        nb, nrow = n1 - n0, r1 - r0
        accs = []
        for g in range(groups):
            if xw is not None:
                buf = np.empty((nb, nrow, wo, kh, kw * c), dtype=np.float32)
                for i in range(kh):
                    y0 = r0 * sh + i * dh
                    buf[:, :, :, i, :] = xw[n0:n1, y0 : y0 + sh * (nrow - 1) + 1 : sh].reshape(
                        nb, nrow, wo, -1
                    )
                cols = buf.reshape(-1, kdim)
            elif kh == kw == 1 and groups == 1:
                src = xp[n0:n1, r0 * sh : (r1 - 1) * sh + 1 : sh, 0 : (wo - 1) * sw + 1 : sw, :]
                cols = src.reshape(-1, c).astype(np.float32)
            else:
                buf = np.empty((nb, nrow, wo, kh, kw, cg), dtype=np.float32)
                for i in range(kh):
                    y0 = r0 * sh + i * dh
                    for j in range(kw):
                        x0 = j * dw
                        buf[:, :, :, i, j, :] = xp[
                            n0:n1, y0 : y0 + sh * (nrow - 1) + 1 : sh, x0 : x0 + sw * (wo - 1) + 1 : sw,
                            g * cg : (g + 1) * cg,
                        ]  # fmt: skip
                cols = buf.reshape(-1, kdim)
            accs.append(weights.matmul(cols, g))
        acc = accs[0] if groups == 1 else np.concatenate(accs, axis=1)
        if bias is not None:
            acc += bias
        res = epilogue(acc) if epilogue is not None else acc
        if not out:
            out.append(np.empty((n, ho, wo, res.shape[-1]), dtype=res.dtype))
        out[0][n0:n1, r0:r1] = res.reshape(nb, nrow, wo, -1)

    for block in _blocks(n, ho, wo, rows):
        work(block)
    return out[0]


def depthwise_conv2d(
    x: np.ndarray,
    w: np.ndarray,
    *,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    pads: tuple[int, int, int, int],
    dilations: tuple[int, int],
    bias: np.ndarray | None = None,
    epilogue: Epilogue | None = None,
) -> np.ndarray:
    """Depthwise conv (one filter per channel): one exact multiply-add pass per tap; ``w`` is (kh*kw, C) in
    the exact accumulator type."""
    n, h, wd, c = x.shape
    kh, kw = kernel
    sh, sw = strides
    dh, dw = dilations
    ho = _out_size(h, kh, sh, dh, pads[0] + pads[2])
    wo = _out_size(wd, kw, sw, dw, pads[1] + pads[3])
    xp = _pad(x, pads)
    acc = None
    for t in range(kh * kw):
        i, j = divmod(t, kw)
        tap = xp[:, i * dh : i * dh + sh * (ho - 1) + 1 : sh, j * dw : j * dw + sw * (wo - 1) + 1 : sw, :]
        if acc is None:
            acc = np.multiply(tap, w[t], dtype=w.dtype)
        else:
            acc += np.multiply(tap, w[t], dtype=w.dtype)
    assert acc is not None
    if bias is not None:
        acc += bias
    if epilogue is None:
        return acc
    return epilogue(acc.reshape(-1, c)).reshape(n, ho, wo, c)


def gemm(
    x: np.ndarray, weights: IntWeights, *, bias: np.ndarray | None = None, epilogue: Epilogue | None = None
) -> np.ndarray:
    """(N, K) codes times the (K, Cout) weight codes, exact; plus bias, then ``epilogue``."""
    acc = weights.matmul(x.astype(np.float32))
    if bias is not None:
        acc += bias
    return epilogue(acc) if epilogue is not None else acc


# -- pooling -------------------------------------------------------------------------------------------------
def max_pool(
    x: np.ndarray,
    *,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    pads: tuple[int, int, int, int],
    pad_value: float | int,
) -> np.ndarray:
    """NHWC max pool; ``pad_value`` must not exceed any real element (the code range's low end)."""
    n, h, w, c = x.shape
    kh, kw = kernel
    sh, sw = strides
    ho = _out_size(h, kh, sh, 1, pads[0] + pads[2])
    wo = _out_size(w, kw, sw, 1, pads[1] + pads[3])
    xp = _pad(x, pads, pad_value)
    out = xp[:, 0 : sh * (ho - 1) + 1 : sh, 0 : sw * (wo - 1) + 1 : sw, :].copy()
    for t in range(1, kh * kw):
        i, j = divmod(t, kw)
        np.maximum(out, xp[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw, :], out=out)
    return out


def window_sum(
    x: np.ndarray,
    *,
    kernel: tuple[int, int] | None,
    strides: tuple[int, int] = (1, 1),
    pads: tuple[int, int, int, int] = (0, 0, 0, 0),
) -> np.ndarray:
    """Sum over each pooling window (NHWC, zero padding), or over all of H, W when ``kernel`` is None."""
    if kernel is None:
        return x.sum(axis=(1, 2), keepdims=True, dtype=x.dtype)
    xp = _pad(x, pads)
    win = sliding_window_view(xp, kernel, axis=(1, 2))[:, :: strides[0], :: strides[1]]
    return win.sum(axis=(-2, -1), dtype=x.dtype)
