"""Dyadic requantization of the integer runtime: multipliers ``m * 2^-shift`` and exact rounding.

Requantization multiplies by a dyadic number ``M = m * 2^-shift`` and rounds half to even. It runs in
float64 when :func:`plan_rescale` proves that each product ``q * m`` and each partial sum stays below 2^53
(then ``np.rint`` rounds the exact rational), or, for a single clamped term, that every input whose product
is not exact saturates anyway (``(R + 1) * 2^shift <= 2^53``, R the largest |code|: such inputs have
``|q * M| >= 2^(53-shift) >= R + 1`` and clamp to the same code exactly or not). Otherwise it runs on int64
with an explicit round-half-even shift (:func:`round_shift_half_even`). Both paths give the same integers as
``clamp(round_half_even(sum(q_i * m_i) / 2^shift), lo, hi)``, which the tests check against exact rationals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from runtimes.integer.kernels import F64_LIMIT

__all__ = [
    "MIN_MULTIPLIER_BITS",
    "Dyadic",
    "RescalePlan",
    "log2_floor",
    "plan_rescale",
    "rescale",
    "round_shift_half_even",
]

MIN_MULTIPLIER_BITS = 31  # requantization multipliers carry at least this much precision (or are exact)
MAX_SHIFT = 62  # int64 shifts
_I64 = 2**63


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
    limit = F64_LIMIT if path == "f64" else _I64
    total = sum(b * abs(float(x)) for b, x in zip(bounds, col)) + abs(float(offset))
    if total == 0:
        return [0] * len(col), 0, 0
    shift = math.floor(math.log2((limit - 1) / total)) + 1
    saturating = path == "f64" and clamp_max is not None and len(col) == 1
    reach = (clamp_max or 0) + 1 + math.ceil(abs(offset))  # |result| beyond which the clamp decides alone
    if saturating:  # inexact products then lie beyond the clamp: reach * 2^shift <= 2^53
        shift = max(shift, math.floor(math.log2(F64_LIMIT / reach)) + 1)
    shift = min(shift, MAX_SHIFT)
    fracs = [(x.numerator, x.denominator) for x in col]
    while shift >= 0:
        ms = [_round_div(n << shift, d) for n, d in fracs]
        mo = _round_div(offset.numerator << shift, offset.denominator)
        if path == "i64" or all(abs(m) < F64_LIMIT for m in ms):
            if sum(b * abs(m) for b, m in zip(bounds, ms)) + abs(mo) < limit:
                return ms, mo, shift
            if saturating and reach << shift <= F64_LIMIT:
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
