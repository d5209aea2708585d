"""The integer runtime's requantization arithmetic (runtimes/integer/dyadic.py) against exact rationals
(hypothesis): round-half-even shifts, dyadic multipliers and both rescale paths."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from runtimes.integer.dyadic import MIN_MULTIPLIER_BITS, Dyadic, plan_rescale, rescale, round_shift_half_even

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- requantization arithmetic -----------------------------------------------------------------------------
@FAST
@given(x=st.integers(-(2**62), 2**62 - 1), shift=st.integers(0, 62))
def test_round_shift_is_round_half_even_of_the_rational(x, shift):
    got = round_shift_half_even(np.array([x], dtype=np.int64), np.array([shift]))
    assert int(got[0]) == round(Fraction(x, 2**shift))  # Python rounds Fractions half to even


@FAST
@given(k=st.integers(-(2**20), 2**20), shift=st.integers(1, 40))
def test_round_shift_on_exact_ties_goes_to_even(k, shift):
    x = (2 * k + 1) << (shift - 1)  # exactly (k + 0.5) * 2^shift, negative ones included
    got = int(round_shift_half_even(np.array([x], dtype=np.int64), shift)[0])
    assert got == (k if k % 2 == 0 else k + 1)


ratio = st.fractions(min_value=Fraction(1, 2**20), max_value=Fraction(4)).filter(lambda f: f > 0)


@FAST
@given(
    ratios=st.lists(st.lists(ratio, min_size=3, max_size=3), min_size=1, max_size=2),
    bounds=st.lists(st.integers(1, 2**24), min_size=2, max_size=2),
    clamp=st.sampled_from([None, 1, 7, 127, 255]),
    offset=st.one_of(st.none(), st.lists(st.fractions(-2, 2), min_size=3, max_size=3)),
    path=st.sampled_from(["f64", "i64"]),
    seed=st.integers(0, 2**16),
)
def test_rescale_computes_the_dyadic_rounding_exactly(ratios, bounds, clamp, offset, path, seed):
    """Both kernels (float64 with the saturation argument, int64 with an explicit shift) give exactly
    clamp(round_half_even(sum q_i m_i / 2^shift + r / 2^shift)); the multipliers keep >= 31 bits."""
    bounds = bounds[: len(ratios)]
    try:
        plan = plan_rescale(ratios, bounds, clamp, offset, paths=(path,))
    except ValueError:
        assume(False)
    rng = np.random.default_rng(seed)
    terms = []
    for b in bounds:
        q = rng.integers(-b, b + 1, size=(12, 3))
        q[0], q[1] = b, -b  # the extremes the bound allows
        terms.append(q)
    lo, hi = (None, None) if clamp is None else (-clamp, clamp)
    got = rescale([t.astype(np.float64) for t in terms], plan, lo, hi, np.int64)
    for c in range(3):
        sh = int(plan.shifts[c])
        for row in range(12):
            num = sum(int(t[row, c]) * int(m[c]) for t, m in zip(terms, plan.mults))
            num += int(plan.offset[c]) if plan.offset is not None else 0
            want = round(Fraction(num, 2**sh))
            if clamp is not None:
                want = max(-clamp, min(clamp, want))
            assert int(got[row, c]) == want
    for r, m in zip(ratios, plan.mults):
        for c in range(3):
            approx = Fraction(int(m[c]), 2 ** int(plan.shifts[c]))
            assert abs(approx - r[c]) <= r[c] / 2**MIN_MULTIPLIER_BITS


@FAST
@given(q=st.integers(-(2**30), 2**30), ratio=ratio, clamp=st.sampled_from([3, 15, 127, 255]))
def test_requantization_agrees_with_exact_rational_rounding(q, ratio, clamp):
    """The dyadic result is round_half_even(q * ratio) clamped, unless q * ratio lies within the multiplier's
    rounding error of a tie (then both neighbours are legitimate)."""
    plan = plan_rescale([[ratio]], [2**30], clamp)
    got = int(rescale([np.array([[q]], dtype=np.float64)], plan, -clamp, clamp, np.int64)[0, 0])
    exact = Fraction(q) * ratio
    want = max(-clamp, min(clamp, round(exact)))
    if got != want:
        err = abs(Fraction(q) * (Fraction(int(plan.mults[0][0]), 2 ** int(plan.shifts[0])) - ratio))
        assert abs(abs(exact - math.floor(exact)) - Fraction(1, 2)) <= err


def test_dyadic_keeps_the_requested_precision():
    for x in (Fraction(1, 3), Fraction(2, 7 * 2**20), Fraction(10**9, 7)):
        d = Dyadic.approx(x, 31)
        assert 2**30 <= d.m < 2**31 and abs(d.fraction() - x) <= x / 2**31
    assert Dyadic.approx(Fraction(3, 8), 31).fraction() == Fraction(3, 8)  # exact when representable
