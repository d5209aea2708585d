"""The search spends its budget: the returned config is maximal (no layer's dominating upgrade fits), the fill
is recorded and ordered by measured loss, and the greedy and sensitivity-knapsack baselines keep budgets."""

from __future__ import annotations

import pytest
import torch

import sdk
from sdk.nas import PAPER_CANDIDATES, greedy_config, sensitivity_config
from sdk.nas.api import prepare_space
from sdk.nas.constraints import BopsBudget
from sdk.nas.fill import affordable_upgrades, fill


def _upgrades_left(model: torch.nn.Module, config: sdk.MixedPrecisionConfig, b_max: float, shape) -> list:
    """Every (layer, pair) switch to a dearer pair with >= bits that still fits b_max, recounted by sdk.bops
    (written against the public API only, so it judges any version of the search)."""
    left = []
    for name, (w0, a0) in config.items():
        for w, a in PAPER_CANDIDATES:
            if w >= w0 and a >= a0 and w * a > w0 * a0:
                trial = config.copy()
                trial[name] = (w, a)
                if sdk.bops(model, trial, input_shape=shape).within(b_max):
                    left.append((name, (w, a)))
    return left


@pytest.mark.parametrize("b_max", [2.5, 3.0, 3.3, 4.0])
def test_search_returns_a_maximal_config(tiny, loaders, b_max):
    """Short searches (2 epochs, one of them warm-up) of an untrained model left upgrades unused."""
    res = sdk.search(tiny, *loaders, b_max=b_max, epochs=2, seed=1, progress=False)
    assert res.within
    assert _upgrades_left(tiny, res.config, b_max, (1, 1, 8, 8)) == []
    if res.fill_moves:  # recorded: each move raised a pair and added BOPs
        assert all(m.bops_added > 0 and m.after[0] >= m.before[0] for m in res.fill_moves)
        d = sdk.nas.SearchResult.from_dict(res.to_dict())
        assert d.fill_moves == res.fill_moves


def test_knapsack_finish_is_inside_and_maximal(tiny, loaders):
    res = sdk.search(tiny, *loaders, b_max=3.0, epochs=2, seed=1, progress=False, finish="knapsack")
    assert res.within and _upgrades_left(tiny, res.config, 3.0, (1, 1, 8, 8)) == []
    with pytest.raises(sdk.InputError, match="finish"):
        sdk.search(tiny, *loaders, b_max=3.0, epochs=2, progress=False, finish="ilp")


def test_fill_false_keeps_the_argmax_config(tiny, loaders):
    res = sdk.search(tiny, *loaders, b_max=4.0, epochs=2, seed=1, progress=False, fill=False)
    assert res.fill_moves == () and res.config == res.pre_repair_config


def test_fill_takes_the_largest_loss_drop_per_bop_first_and_ties_do_not_stop_it(tiny):
    space = prepare_space(tiny, (1, 1, 8, 8), PAPER_CANDIDATES, "layer", None)
    cheap = space.cheapest_choice()
    budget = [BopsBudget(space, 3.0)]
    # group 2 (fc) gains most per BOP; equal losses elsewhere must not stop the fill
    losses = {(gi, j): (1.0 - 0.5 * (gi == 2 and j != cheap[gi])) for gi in range(3) for j in range(8)}
    choice, moves = fill(space, cheap, budget, lambda g, j: losses[(g, j)])
    assert moves[0].group == "fc" and moves[0].loss_drop == pytest.approx(0.5)
    assert affordable_upgrades(space, choice, budget) == []
    assert budget[0].inside(choice)
    same, _ = fill(space, cheap, budget, lambda g, j: 1.0)  # all tied: still maximal
    assert affordable_upgrades(space, same, budget) == []


def test_greedy_gives_the_smallest_layers_the_top_pair(tiny):
    r = greedy_config(tiny, 2.5, (1, 1, 8, 8))
    assert r.within and r.method == "greedy"
    assert r.config["fc"] == (8, 4)  # 24 MACs of 2,072: the dearest pair fits
    assert _upgrades_left(tiny, r.config, 2.5, (1, 1, 8, 8)) == []


def test_sensitivity_knapsack_stays_inside_and_reports_its_measurements(tiny, loaders):
    r = sensitivity_config(tiny, loaders[1], 3.0, batches=2)
    assert r.within and r.seconds > 0 and set(r.sensitivity) == {"conv1", "conv2", "fc"}
    assert all(len(v) == len(PAPER_CANDIDATES) for v in r.sensitivity.values())
    with pytest.raises(sdk.BudgetInfeasible):
        sensitivity_config(tiny, loaders[1], 2.0, batches=1)
