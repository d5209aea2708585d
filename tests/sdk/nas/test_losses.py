"""Barrier (Eq. 12) domain edge, Prob-1 (Eq. 14), E(SN) in bits (Eq. 4, 10), mu schedule."""

import math

import pytest
import torch

import sdk
from sdk.nas import MuSchedule
from sdk.nas.algorithm import INSIDE_TOL
from sdk.nas.losses import barrier, barrier_value, expected_bits, prob1


@pytest.mark.parametrize("mu", [0.5, 0.2, 0.05])
def test_barrier_domain_edge(mu):
    b_max = 4.0
    inside = [b_max - d for d in (3.0, 1.0, 0.1, 1e-3, INSIDE_TOL, 1e-9)]
    values = []
    for e in inside:
        t = torch.tensor(e, dtype=torch.float64, requires_grad=True)
        v = barrier(t, b_max, mu)
        (g,) = torch.autograd.grad(v, t)
        assert torch.isfinite(v) and torch.isfinite(g) and g > 0, (e, v, g)
        values.append(v.item())
    assert values == sorted(values)  # grows toward the barrier
    assert abs(barrier_value(0.0, b_max, mu)) < mu  # near zero deep inside
    for e in (b_max, b_max + 1e-12, b_max + 0.5, b_max + 1.0, b_max + 3.0):
        v = barrier(torch.tensor(e, dtype=torch.float64), b_max, mu)
        assert v == math.inf and not torch.isnan(v)
        assert barrier_value(e, b_max, mu) == math.inf


def test_prob1_property():
    one_hot = [torch.tensor([0.0, 1.0, 0.0]), torch.tensor([1.0, 0.0])]
    assert float(prob1(one_hot)) == 0.0
    uniform = [torch.full((3,), 1 / 3), torch.full((2,), 0.5)]
    assert float(prob1(uniform)) == pytest.approx((2 / 3) ** 3 + 0.25)
    theta = torch.zeros(4, requires_grad=True)
    (g,) = torch.autograd.grad(prob1([torch.softmax(theta, 0)]), theta)
    assert torch.allclose(g, torch.zeros(4), atol=1e-7)  # uniform is a saddle: no early push


def test_expected_bits_matches_sdk_bops_when_one_hot(tiny):
    from sdk.nas.api import prepare_space
    from sdk.nas.supernet import build_supernet

    space = prepare_space(tiny, (1, 1, 8, 8), [(2, 3), (4, 4), (8, 4)], "layer", None)
    sn = build_supernet(tiny, space)
    choice = [2, 0, 1]
    with torch.no_grad():
        for t, j in zip(sn.theta, choice):
            t.fill_(-1e4)
            t[j] = 0.0
    rep = sdk.bops(tiny, space.config(choice), input_shape=(1, 1, 8, 8))
    assert sn.expected_bits().item() == pytest.approx(rep.avg_bits, rel=1e-12)
    probs = [torch.tensor([0.5, 0.5, 0.0]), torch.tensor([0.0, 0.0, 1.0]), torch.tensor([1.0, 0.0, 0.0])]
    c = sn.coeffs
    manual = math.sqrt(sum(float((p.double() * c[i, :3]).sum()) for i, p in enumerate(probs)))
    assert float(expected_bits(probs, c)) == pytest.approx(manual)


def test_mu_schedule_is_small_early():
    mu = MuSchedule(0.01, 0.2)
    vals = [mu(t / 10) for t in range(11)]
    assert vals == sorted(vals) and vals[0] == 0.01 and vals[-1] == pytest.approx(0.2)
    assert MuSchedule.constant(0.1)(0.7) == 0.1
    with pytest.raises(sdk.InputError):
        MuSchedule(-1.0, 0.1)
