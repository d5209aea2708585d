"""Constraints beyond BOPs: weight memory and MAC-array cycles priced by the target, guaranteed like b_max."""

from __future__ import annotations

import math

import pytest
import torch

import sdk
import targets
from sdk.nas.api import prepare_space
from sdk.nas.budget import build_constraints, check_budget, check_feasible
from sdk.nas.certificate import Certificate
from sdk.nas.constraints import BopsBudget, Cycles, WeightBytes, all_inside
from sdk.nas.fill import affordable_upgrades
from sdk.nas.heuristics import greedy_config, knapsack
from sdk.nas.result import SearchResult
from sdk.nas.sampling import repair

SHAPE = (1, 1, 8, 8)
# TinyNet: conv1 1->4 3x3 (36 weights, 2304 MACs), conv2 4->8 3x3 /2 (288, 4608), fc 8->3 (24, 24)
PARAMS = {"conv1": 36, "conv2": 288, "fc": 24}
MACS = {"conv1": 2304, "conv2": 4608, "fc": 24}


def _space(model, target="integer"):
    return prepare_space(model, SHAPE, sdk.nas.PAPER_CANDIDATES, "layer", target)


def _choice_of(space, config):
    return [g.candidates.index(config[g.layers[0]]) for g in space.groups]


def _choices(space, n=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        [int(torch.randint(len(gr.candidates), (1,), generator=g)) for gr in space.groups] for _ in range(n)
    ]


@pytest.mark.parametrize(("target", "container"), [("integer", None), ("onnxruntime", 8), (None, None)])
def test_weight_bytes_counts_the_bits_the_target_stores(tiny, target, container):
    space = _space(
        tiny, None
    )  # every pair searched; priced as the target stores it (8-bit containers on x86)
    wb = WeightBytes(space, 1.0, target=targets.get(target) if target else None)
    for choice in _choices(space):
        cfg = space.config(choice)
        by_hand = sum(math.ceil(PARAMS[n] * (container or w) / 8) for n, (w, _) in cfg.items())
        assert wb.value(choice) == pytest.approx(by_hand / 1024, rel=0, abs=1e-12)


def test_cycles_count_the_mac_array_of_the_target(tiny):
    t = targets.get("integer")
    space = _space(tiny)
    cy = Cycles(space, 1e9, target=t)
    elements = t.cost.mac_rows * t.cost.mac_cols
    for choice in _choices(space):
        cfg = space.config(choice)
        by_hand = sum(math.ceil(MACS[n] * w * a / elements) for n, (w, a) in cfg.items())
        assert cy.value(choice) == by_hand
        assert cy.value(choice) == t.cost.cycles(sdk.bops(tiny, cfg, input_shape=SHAPE))


def test_expected_is_linear_and_equals_value_at_one_hot(tiny):
    space = _space(tiny)
    for c in (
        WeightBytes(space, 0.2, target=targets.get("integer")),
        Cycles(space, 300, target=targets.get("integer")),
    ):
        for choice in _choices(space, 5):
            one_hot = [
                torch.nn.functional.one_hot(torch.tensor(j), len(g.candidates)).double()
                for j, g in zip(choice, space.groups)
            ]
            assert float(c.expected(one_hot)) == pytest.approx(c.value(choice), rel=1e-12)
        probs = [torch.softmax(torch.randn(len(g.candidates), dtype=torch.float64), 0) for g in space.groups]
        mean = sum(p[j] * c.table[gi][j] for gi, p in enumerate(probs) for j in range(len(p))) / c.per_unit
        assert float(c.expected(probs)) == pytest.approx(float(mean), rel=1e-12)


def test_budget_keys_and_limits_are_checked():
    assert check_budget(None) == {} and check_budget({"weight_kb": 2, "cycles": 3.5}) == {
        "weight_kb": 2.0,
        "cycles": 3.5,
    }
    with pytest.raises(sdk.InputError, match="Did you mean 'weight_kb'"):
        check_budget({"weight_kbs": 1})
    for bad in (0, -1, math.nan, math.inf, True, "4"):
        with pytest.raises(sdk.InputError, match="positive finite"):
            check_budget({"cycles": bad})


def test_cycles_need_a_target_with_a_mac_array(tiny):
    space = _space(tiny, None)
    with pytest.raises(sdk.InputError, match="'integer'"):
        build_constraints(space, 3.0, {"cycles": 1e6}, None)
    with pytest.raises(sdk.InputError, match="'onnxruntime' has none"):
        build_constraints(space, 3.0, {"cycles": 1e6}, "onnxruntime")


def test_infeasible_names_the_binding_constraint_and_its_minimum(tiny, loaders):
    # every layer at 2 bits stores ceil(36*2/8) + ceil(288*2/8) + ceil(24*2/8) = 87 bytes
    with pytest.raises(sdk.BudgetInfeasible, match=r"weight_kb=0\.05 .* 0\.085 KB"):
        sdk.search(
            tiny, *loaders, b_max=6.0, epochs=1, progress=False, budget={"weight_kb": 0.05}, target="integer"
        )
    with pytest.raises(sdk.BudgetInfeasible, match=r"cycles=100 .*163 cycles"):
        sdk.search(
            tiny, *loaders, b_max=6.0, epochs=1, progress=False, budget={"cycles": 100}, target="integer"
        )


def test_jointly_infeasible_budget_is_refused(tiny):
    # (2, 8) is cheapest in bytes, (8, 2) in cycles on an array with 8-bit weight units (a cycles per MAC):
    # 87 bytes need every layer at (2, 8), which takes 217 cycles; all (8, 2) takes 55
    space = prepare_space(tiny, SHAPE, [(2, 8), (8, 2)], "layer", None)
    t = targets.get("integer").replace(cost=targets.CostModel(16, 16, 200.0, w_unit=8, a_unit=1))
    cons = build_constraints(space, 8.0, {"weight_kb": 87 / 1024, "cycles": 1e9}, t)
    assert check_feasible(space, cons) == [0, 0, 0]
    cons = build_constraints(space, 8.0, {"weight_kb": 87 / 1024, "cycles": 100}, t)
    with pytest.raises(sdk.BudgetInfeasible, match="together"):
        check_feasible(space, cons)


@pytest.mark.parametrize("budget", [{"weight_kb": 0.2}, {"cycles": 250}, {"weight_kb": 0.12, "cycles": 300}])
def test_search_inside_every_binding_constraint(tiny, loaders, budget):
    res = sdk.search(tiny, *loaders, b_max=6.0, epochs=2, progress=False, budget=budget, target="integer")
    checks = {c.name: c for c in res.certificate.checks}
    assert set(checks) == {"avg_bits", *budget} and all(c.inside for c in checks.values()) and res.within
    space = _space(tiny)
    cons = build_constraints(space, 6.0, budget, "integer")
    choice = _choice_of(space, res.config)
    assert all_inside(cons, choice) and not affordable_upgrades(space, choice, cons)  # maximal
    bops_only = build_constraints(space, 6.0, {}, "integer")
    uniform = [[j] * len(space.groups) for j in range(min(len(g.candidates) for g in space.groups))]
    assert any(all_inside(bops_only, u) and not all_inside(cons, u) for u in uniform)  # the budget binds
    probs = [torch.tensor(res.probs[g.name], dtype=torch.float64) for g in space.groups]
    assert all(float(c.expected(probs)) <= c.limit - c.margin for c in cons)  # theta stayed in every barrier
    for name, limit in budget.items():
        assert checks[name].limit == limit and checks[name].value <= limit


def test_certificate_recounts_and_round_trips(tiny, loaders, tmp_path):
    budget = {"weight_kb": 0.2, "cycles": 300}
    res = sdk.search(tiny, *loaders, b_max=4.0, epochs=1, progress=False, budget=budget, target="integer")
    cert = res.certificate
    assert isinstance(cert, Certificate) and cert.inside
    assert cert["avg_bits"].value == sdk.bops(tiny, res.config, input_shape=SHAPE).avg_bits
    by_hand = sum(math.ceil(PARAMS[n] * w / 8) for n, (w, _) in res.config.items()) / 1024
    assert cert["weight_kb"].value == pytest.approx(by_hand, abs=1e-12)
    assert cert["cycles"].value == sum(math.ceil(MACS[n] * w * a / 256) for n, (w, a) in res.config.items())
    res.to_json(tmp_path / "r.json")
    back = SearchResult.from_json(tmp_path / "r.json")
    assert back.certificate == cert and back.budget == budget and back.target == "integer"
    assert "weight_kb" in res.summary() and "cycles" in cert.table()


def test_repair_and_knapsack_honour_every_constraint(tiny):
    space = _space(tiny)
    cons = build_constraints(space, 6.0, {"weight_kb": 0.1, "cycles": 260}, "integer")
    top = [len(g.candidates) - 1 for g in space.groups]
    probs = [[1.0 / len(g.candidates)] * len(g.candidates) for g in space.groups]
    assert not all_inside(cons, top)
    choice, moves = repair(space, top, probs, 6.0, cons)
    assert all_inside(cons, choice) and moves
    delta = [[-float(j) for j in range(len(g.candidates))] for g in space.groups]
    best = knapsack(space, delta, cons)
    assert best is not None and all_inside(cons, best)
    alone = knapsack(space, delta, 6.0)
    assert alone is not None and all_inside([BopsBudget(space, 6.0)], alone) and not all_inside(cons, alone)


def test_greedy_baseline_takes_a_budget(tiny):
    res = greedy_config(tiny, 6.0, SHAPE, target="integer", budget={"weight_kb": 0.15})
    assert res.within and res.certificate["weight_kb"].value <= 0.15


def test_a_target_object_prices_the_search(tiny, loaders):
    # a 2-bit-unit array: (3, 3) and (4, 4) cost the same 4 element-cycles per MAC, (2, 3) and (2, 4) 2
    t = targets.get("integer").replace(cost=targets.CostModel(16, 16, 200.0, w_unit=2, a_unit=2))
    res = sdk.search(tiny, *loaders, b_max=6.0, epochs=1, progress=False, budget={"cycles": 120}, target=t)
    assert res.certificate["cycles"].value <= 120 and res.target == "integer"
    cfg = res.config
    assert res.certificate["cycles"].value == sum(
        math.ceil(MACS[n] * math.ceil(w / 2) * math.ceil(a / 2) / 256) for n, (w, a) in cfg.items()
    )
