"""The budget guarantee: theta steps never leave the barrier domain, repair, certificate."""

import math

import pytest
import torch

import sdk
from sdk.nas import PAPER_CANDIDATES
from sdk.nas.algorithm import INSIDE_TOL, SearchSettings, _theta_step
from sdk.nas.api import prepare_space
from sdk.nas.sampling import argmax_choice, repair
from sdk.nas.supernet import build_supernet, init_theta_inside


@pytest.mark.parametrize("b_max", [2.46, 2.5, 3.0, 3.5, 4.0, 6.0])
def test_init_starts_strictly_inside_undecided_among_affordable_candidates(tiny, b_max):
    space = prepare_space(tiny, (1, 1, 8, 8), PAPER_CANDIDATES, "layer", None)
    sn = build_supernet(tiny, space)
    margin = min(0.1, 0.5 * (b_max - space.min_avg_bits()))
    beta = init_theta_inside(sn, b_max, margin)
    e = sn.expected_bits().item()
    assert e <= b_max - margin + 1e-9
    assert space.report(sn.argmax_choice()).within(b_max)
    if beta > 0:  # solved onto the target
        assert e > b_max - margin - 1e-3
    p = sn.probs()[0].detach()  # conv1
    costs = torch.tensor([float(w * a) for w, a in PAPER_CANDIDATES])
    affordable = costs <= b_max**2
    if affordable.any() and beta > 0:  # hinge start: the affordable candidates tie for the lead
        assert torch.allclose(p[affordable], p[affordable].max()) and p[affordable].min() >= p.max() - 1e-6
        assert bool((p[~affordable] < p[affordable].min()).all())
    if b_max >= 3.0:  # every candidate alive
        assert float(p.min()) > 1e-4
    if b_max >= 4.05:  # the paper's uniform start is inside
        assert beta == 0.0 and torch.allclose(p, torch.full_like(p, 1 / len(p)))
    # each group tilted by its MAC share: the smallest group's dear candidates keep the most mass
    macs = [g.macs for g in space.groups]
    probs = [q.detach() for q in sn.probs()]
    small, big = probs[macs.index(min(macs))], probs[macs.index(max(macs))]
    assert float(small[-1]) >= float(big[-1]) - 1e-12
    if beta > 0 and min(macs) < max(macs):
        assert float(small[-1]) > float(big[-1])


def test_init_falls_back_to_a_cost_tilt_when_the_affordable_candidates_are_too_dear(tiny):
    """Candidates all at w*a <= b_max**2 but averaging above b_max - margin: tilt every one by its cost."""
    cands = [(2, 4), (3, 3)]  # costs 8, 9 <= 3**2; uniform is 2.92 bits > 2.9
    space = prepare_space(tiny, (1, 1, 8, 8), cands, "layer", None)
    sn = build_supernet(tiny, space)
    beta = init_theta_inside(sn, 3.0, 0.1)
    p = sn.probs()[0].detach()  # conv1
    assert beta > 0 and sn.expected_bits().item() <= 2.9 + 1e-9
    assert p[0] > p[1] > 0.1  # cost-ordered, both alive


def test_theta_steps_never_leave_the_domain(tiny, loaders, monkeypatch):
    """Huge Adam steps driven by a loss that rewards bits: each step is shortened at the barrier."""
    b_max = 3.0
    space = prepare_space(tiny, (1, 1, 8, 8), PAPER_CANDIDATES, "layer", None)
    sn = build_supernet(tiny, space)
    x, y = next(iter(loaders[0]))
    sn.calibrate(x)
    init_theta_inside(sn, b_max, 1e-3)  # start right at the edge
    costs = torch.tensor([float(w * a) for w, a in PAPER_CANDIDATES])
    monkeypatch.setattr("sdk.nas.algorithm.prob1", lambda probs: -sum((p * costs).sum() for p in probs))
    opt = torch.optim.Adam(sn.theta_params(), lr=5.0)
    s = SearchSettings(b_max=b_max, epochs=1)
    backtracks = 0
    for _ in range(10):
        backtracks += int(_theta_step(sn, opt, s, x, y, mu=1e-4, prob1_weight=1.0, epoch=0)[3])
        e = sn.expected_bits().item()
        assert math.isfinite(e) and e <= b_max - INSIDE_TOL
    assert backtracks > 0
    assert e > b_max - 0.05  # it did push right up to the barrier


def test_theta_steps_keep_the_argmax_config_inside(tiny):
    """E(SN) inside is not enough: a step that makes a dear candidate lead everywhere is shortened too."""
    from sdk.nas.algorithm import _stay_inside

    b_max = 4.5
    space = prepare_space(tiny, (1, 1, 8, 8), PAPER_CANDIDATES, "layer", None)
    sn = build_supernet(tiny, space)
    cheap, dear = PAPER_CANDIDATES.index((2, 3)), PAPER_CANDIDATES.index((8, 4))

    def theta(p_cheap, p_dear):
        p = torch.full((len(PAPER_CANDIDATES),), (1 - p_cheap - p_dear) / (len(PAPER_CANDIDATES) - 2))
        p[cheap], p[dear] = p_cheap, p_dear
        return p.log()

    old, new = theta(0.5, 0.45), theta(0.45, 0.5)  # same E(SN), the argmax flips from (2, 3) to (8, 4)
    for keep in (False, True):
        with torch.no_grad():
            for t in sn.theta:
                t.copy_(new)
        assert sn.expected_bits().item() < b_max - INSIDE_TOL
        _stay_inside(sn, [old.clone() for _ in sn.theta], b_max, keep_argmax=keep)
        assert space.report(argmax_choice(sn.probs())).within(b_max) == keep


def test_repair_lowers_least_important_per_bop_until_inside(tiny):
    space = prepare_space(tiny, (1, 1, 8, 8), PAPER_CANDIDATES, "layer", None)
    top = PAPER_CANDIDATES.index((8, 4))
    choice = [top, top, top]
    # conv1 is sure of (8, 4); conv2 is not (nearly tied with (4, 4)); fc is irrelevant in MACs
    probs = [[0.01] * 7 + [0.93], [0.01] * 4 + [0.45, 0.01, 0.01, 0.46], [0.01] * 7 + [0.93]]
    probs = [[v / sum(p) for v in p] for p in probs]
    assert not space.report(choice).within(3.0)
    fixed, moves = repair(space, choice, probs, 3.0)
    assert space.report(fixed).within(3.0)
    assert moves and moves[0].group == "conv2" and moves[0].after == (4, 4)
    lowering = [m for m in moves if m.bops_saved > 0]
    assert moves[: len(lowering)] == lowering  # lowering first, then any refill
    _assert_no_higher_p_move_fits(space, fixed, probs, 3.0)


def _assert_no_higher_p_move_fits(space, choice, probs, b_max):
    for gi, g in enumerate(space.groups):
        for j in range(len(g.candidates)):
            if probs[gi][j] > probs[gi][choice[gi]]:
                trial = [*choice[:gi], j, *choice[gi + 1 :]]
                assert not space.report(trial).within(b_max), (g.name, g.candidates[j])


def test_repair_refills_the_budget_a_big_lowering_move_left():
    """A move that saves far more than the overshoot is followed by raising groups back towards argmax."""
    import random

    space = prepare_space(sdk.models.digits_cnn(width=4), (1, 1, 8, 8), PAPER_CANDIDATES, "layer", None)
    rng = random.Random(0)
    refilled = 0
    for _ in range(40):
        probs = []
        for _g in space.groups:
            p = [rng.random() ** 4 for _ in PAPER_CANDIDATES]
            probs.append([v / sum(p) for v in p])
        choice = [max(range(len(p)), key=p.__getitem__) for p in probs]
        if space.report(choice).within(3.0):
            continue
        fixed, moves = repair(space, choice, probs, 3.0)
        assert space.report(fixed).within(3.0)
        _assert_no_higher_p_move_fits(space, fixed, probs, 3.0)
        refilled += any(m.bops_saved < 0 for m in moves)
    assert refilled > 0  # the refill pass did run on some of these


def test_search_repairs_an_over_budget_argmax_and_certifies(tiny, loaders, monkeypatch):
    def over_budget_start(sn, b_max, margin, **_):
        """E(SN) inside, but the argmax everywhere is (8, 4): Eq. 8 alone would break the budget."""
        with torch.no_grad():
            for t in sn.theta:
                p = torch.tensor([0.245, 0.245, 0.245, 1e-3, 1e-3, 1e-3, 1e-3, 0.26])
                t.copy_(p.log())
        assert sn.expected_bits().item() < b_max
        return 0, 0.0

    monkeypatch.setattr("sdk.nas.api.init_theta_inside", over_budget_start)
    res = sdk.search(tiny, *loaders, b_max=4.0, epochs=1, progress=False, steps_per_epoch=1, theta_lr=0.0,
                     start="hinge")  # the patched start is the hinge's  # fmt: skip
    assert res.repaired and res.pre_repair_avg_bits > 4.0 and res.repair_moves
    assert res.certificate.within(4.0) and res.avg_bits <= 4.0
    assert sdk.bops(tiny, res.config, input_shape=(1, 1, 8, 8)).avg_bits == res.certificate.avg_bits
    assert res.pre_repair_config != res.config


def test_degenerate_budget_returns_the_cheapest_config(tiny, loaders):
    b = math.sqrt(6) + 1e-5  # only all-(2, 3) fits
    res = sdk.search(tiny, *loaders, b_max=b, epochs=1, progress=False)
    assert set(res.config.values()) == {(2, 3)} and res.certificate.within(b)
