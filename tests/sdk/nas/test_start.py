"""start="sensitivity": theta starts led by the measured-sensitivity knapsack config, inside every barrier."""

from __future__ import annotations

import pytest
import torch

import sdk
from sdk.nas import PAPER_CANDIDATES, SearchResult
from sdk.nas.api import prepare_space
from sdk.nas.constraints import BopsBudget
from sdk.nas.supernet import build_supernet, init_theta_inside, init_theta_lead

SHAPE = (1, 1, 8, 8)


@pytest.mark.parametrize("b_max", [2.5, 3.5])
def test_sensitivity_start_leads_with_the_knapsack_config_inside_the_budget(tiny, loaders, b_max):
    r = sdk.search(tiny, *loaders, b_max=b_max, epochs=2, seed=1, progress=False, start="sensitivity")
    assert r.start == "sensitivity" and r.start_config is not None and r.start_seconds > 0
    assert sdk.bops(tiny, r.start_config, input_shape=SHAPE).within(b_max)
    first = r.history[0]  # epoch 0: before any theta step
    lead = {g: PAPER_CANDIDATES[max(range(len(p)), key=p.__getitem__)] for g, p in first.probs.items()}
    assert lead == dict(r.start_config.items())
    assert first.expected_bits < b_max and r.within
    back = SearchResult.from_dict(r.to_dict())
    assert (back.start, back.start_config, back.start_seconds) == (r.start, r.start_config, r.start_seconds)


def test_default_start_is_the_sensitivity_lead_and_hinge_is_an_option(tiny, loaders):
    r = sdk.search(tiny, *loaders, b_max=3.0, epochs=2, seed=1, progress=False)
    assert r.start == "sensitivity" and r.start_config is not None
    h = sdk.search(tiny, *loaders, b_max=3.0, epochs=2, seed=1, progress=False, start="hinge")
    assert (h.start, h.start_config, h.start_seconds) == ("hinge", None, 0.0)


def test_unknown_start_is_refused_with_the_choices(tiny, loaders):
    with pytest.raises(sdk.InputError, match="hinge.*sensitivity"):
        sdk.search(tiny, *loaders, b_max=3.0, epochs=2, progress=False, start="hawq")


def test_a_lead_at_the_cap_is_mixed_with_the_floor_until_inside(tiny):
    """The dearest config that fits b_max leads, yet E(SN) ends inside the start target."""
    space = prepare_space(tiny, SHAPE, PAPER_CANDIDATES, "layer", None)
    sn = build_supernet(tiny, space)
    b_max, target = 3.0, 2.9
    init_theta_inside(sn, b_max, b_max - target)
    lead = [PAPER_CANDIDATES.index((3, 3))] * len(space.groups)  # exactly b_max: outside the target alone
    floor = space.cheapest_choice()
    eps = init_theta_lead(sn, lead, floor, lambda: float(sn.expected_bits()) <= target)
    assert eps is not None and 0 < eps < 0.45
    assert float(sn.expected_bits()) <= target and sn.argmax_choice() == lead
    assert BopsBudget(space, b_max).inside(sn.argmax_choice())
    before = [t.detach().clone() for t in sn.theta]  # an impossible target leaves theta as it was
    assert init_theta_lead(sn, lead, floor, lambda: False) is None
    assert all(torch.equal(a, b) for a, b in zip(before, sn.theta))
