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

from collections.abc import Sequence
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
    "conv2d",
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
    """How to compute ``clamp(round_half_even(sum_i q_i * M_i), lo, hi)`` exactly.

    ``mults[i]`` holds term i's per-channel int64 multipliers m and ``shifts`` the per-channel shifts, so
    ``M_i = m_i * 2^-shift``; ``f64_mults[i]`` are the same numbers as (exact) float64. ``path`` is "f64" or
    "i64". ``min_bits`` is the precision of the least precise rounded multiplier (None when all are exact).
    """

    path: str
    mults: tuple[np.ndarray, ...]
    shifts: np.ndarray
    f64_mults: tuple[np.ndarray, ...]
    min_bits: int | None


def _channel_plan(
    col: Sequence[Fraction], bounds: Sequence[int], clamp_max: int | None, path: str
) -> tuple[list[int], int] | None:
    """Multipliers with the largest shift the path's exactness argument allows, or None."""
    limit = _F64 if path == "f64" else _I64
    total = sum((b * x for b, x in zip(bounds, col)), Fraction(0))
    if total == 0:
        return [0] * len(col), 0
    shift = log2_floor(Fraction(limit - 1) / total)
    saturating = path == "f64" and clamp_max is not None and len(col) == 1
    if saturating:  # inexact products then lie beyond the clamp: (R + 1) * 2^shift <= 2^53
        assert clamp_max is not None
        shift = max(shift, 53 - clamp_max.bit_length())
    while shift >= 0:
        ms = [round(x * (1 << shift)) for x in col]
        if path == "i64" or all(m < _F64 for m in ms):
            if sum(b * m for b, m in zip(bounds, ms)) < limit:
                return ms, shift
            if saturating and (clamp_max or 0) + 1 <= _F64 >> shift:
                return ms, shift
        shift -= 1
    return None


def plan_rescale(
    ratios: Sequence[Sequence[Fraction]], bounds: Sequence[int], clamp_max: int | None
) -> RescalePlan:
    """Choose per-channel multipliers for ``sum_i q_i * ratios[i][c]`` with |q_i| <= bounds[i].

    ``ratios[i]`` has one entry per channel, or one for all. ``clamp_max`` is max(|lo|, |hi|) of the output
    clamp (None: no clamp). Prefers the float64 path, falls back to int64, and raises when neither keeps
    MIN_MULTIPLIER_BITS of precision in every multiplier that is not exact.
    """
    channels = max(len(r) for r in ratios)
    per = [[r[c] if len(r) > 1 else r[0] for c in range(channels)] for r in ratios]
    for path in ("f64", "i64"):
        mults: list[list[int]] = [[] for _ in ratios]
        shifts: list[int] = []
        min_bits: int | None = None
        for c in range(channels):
            col = [p[c] for p in per]
            found = _channel_plan(col, bounds, clamp_max, path)
            if found is None:
                break
            ms, shift = found
            for i, (m, x) in enumerate(zip(ms, col)):
                mults[i].append(m)
                if Fraction(m, 1 << shift) != x:
                    min_bits = m.bit_length() if min_bits is None else min(min_bits, m.bit_length())
            shifts.append(shift)
        else:
            if min_bits is None or min_bits >= MIN_MULTIPLIER_BITS:
                sh = np.array(shifts, dtype=np.int64)
                ms_arr = tuple(np.array(m, dtype=np.int64) for m in mults)
                f64 = tuple(np.ldexp(m.astype(np.float64), -sh) for m in ms_arr)
                return RescalePlan(path, ms_arr, sh, f64, min_bits)
    raise ValueError(
        f"no exact requantization with >= {MIN_MULTIPLIER_BITS}-bit multipliers for inputs bounded by "
        f"{list(bounds)} and scale ratios {[float(p[0]) for p in per]}"
    )


def rescale(
    terms: Sequence[np.ndarray], plan: RescalePlan, lo: int | None, hi: int | None, out_dtype: type
) -> np.ndarray:
    """``clamp(round_half_even(sum_i terms[i] * M_i), lo, hi)``; channel is the last axis of every term."""
    if plan.path == "f64":
        y = np.multiply(terms[0], plan.f64_mults[0], dtype=np.float64)
        for t, m in zip(terms[1:], plan.f64_mults[1:]):
            y += np.multiply(t, m, dtype=np.float64)
        np.rint(y, out=y)
        if lo is not None or hi is not None:
            np.clip(y, lo, hi, out=y)
        return y if out_dtype is np.float64 else y.astype(out_dtype)
    acc = terms[0].astype(np.int64) * plan.mults[0]
    for t, m in zip(terms[1:], plan.mults[1:]):
        acc += t.astype(np.int64) * m
    out = round_shift_half_even(acc, plan.shifts)
    if lo is not None or hi is not None:
        np.clip(out, lo, hi, out=out)
    return out.astype(out_dtype)


# -- convolution and GEMM ------------------------------------------------------------------------------------
def _pad(x: np.ndarray, pads: tuple[int, int, int, int], value: float | int = 0) -> np.ndarray:
    t, l, b, r = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), constant_values=value)


def _out_size(size: int, k: int, stride: int, dilation: int, pad: int) -> int:
    return (size + pad - dilation * (k - 1) - 1) // stride + 1


def conv2d(
    x: np.ndarray,
    w: np.ndarray,
    *,
    kernel: tuple[int, int],
    strides: tuple[int, int],
    pads: tuple[int, int, int, int],
    dilations: tuple[int, int],
    groups: int,
    dtype: type,
) -> np.ndarray:
    """Integer conv of NHWC codes ``x``; ``w`` is (groups, kh*kw*Cin/g, Cout/g) in ``dtype``, or for a
    depthwise conv (Cin == groups, one output per group) (kh*kw, C). Returns the NHWC accumulator."""
    n, h, wd, c = x.shape
    kh, kw = kernel
    sh, sw = strides
    dh, dw = dilations
    ho = _out_size(h, kh, sh, dh, pads[0] + pads[2])
    wo = _out_size(wd, kw, sw, dw, pads[1] + pads[3])
    xp = _pad(x, pads)

    def tap(i: int, j: int) -> np.ndarray:
        return xp[:, i * dh : i * dh + sh * (ho - 1) + 1 : sh, j * dw : j * dw + sw * (wo - 1) + 1 : sw, :]

    if w.ndim == 2:  # depthwise: one multiply-add pass per tap, in the exact float type
        acc = np.multiply(tap(0, 0), w[0], dtype=dtype)
        for t in range(1, kh * kw):
            acc += np.multiply(tap(t // kw, t % kw), w[t], dtype=dtype)
        return acc
    cg = c // groups
    if kh == kw == 1 and groups == 1:
        cols = tap(0, 0).reshape(-1, c).astype(dtype)
        return np.matmul(cols, w[0]).reshape(n, ho, wo, -1)
    outs = []
    for g in range(groups):
        cols = np.empty((n, ho, wo, kh, kw, cg), dtype=dtype)
        for i in range(kh):
            for j in range(kw):
                cols[:, :, :, i, j, :] = tap(i, j)[..., g * cg : (g + 1) * cg]
        outs.append(np.matmul(cols.reshape(n * ho * wo, kh * kw * cg), w[g]))
    out = outs[0] if groups == 1 else np.concatenate(outs, axis=1)
    return out.reshape(n, ho, wo, -1)


def gemm(x: np.ndarray, w: np.ndarray, dtype: type) -> np.ndarray:
    """(N, K) codes times the (K, Cout) weight matrix, exact in ``dtype``."""
    return np.matmul(x.astype(dtype), w)


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
