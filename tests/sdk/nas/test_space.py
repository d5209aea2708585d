"""Groups (layer / block / explicit), candidates and target restriction, infeasible budgets."""

import pytest

import sdk
from sdk.nas import PAPER_CANDIDATES
from sdk.nas.api import prepare_space
from sdk.nas.space import find_groups, normalize_candidates, restrict_to_target


def test_block_groups_follow_add_owners(tiny_res):
    names = sdk.quant.quantizable_layer_names(tiny_res)
    assert find_groups(tiny_res, names, "layer") == [(n, [n]) for n in names]
    assert find_groups(tiny_res, names, "block") == [
        ("stem", ["stem"]),
        ("block", ["block.conv1", "block.conv2"]),
        ("fc", ["fc"]),
    ]


def test_block_groups_on_zoo_resnet20():
    model = sdk.models.resnet20(num_classes=10)
    groups = dict(find_groups(model, sdk.quant.quantizable_layer_names(model), "block"))
    assert len(groups) == 11  # stem conv, 9 basic blocks, fc
    assert groups["layer2.0"] == ["layer2.0.conv1", "layer2.0.conv2", "layer2.0.shortcut.0"]


def test_explicit_groups_and_errors(tiny):
    names = sdk.quant.quantizable_layer_names(tiny)
    assert find_groups(tiny, names, [["conv1", "fc"]]) == [("conv1", ["conv1", "fc"]), ("conv2", ["conv2"])]
    with pytest.raises(sdk.InputError, match="lacks"):
        find_groups(tiny, names, [["nope"]])
    with pytest.raises(sdk.InputError):
        find_groups(tiny, names, "blocks")


def test_group_macs_sum_its_layers(tiny_res):
    space = prepare_space(tiny_res, (1, 1, 8, 8), PAPER_CANDIDATES, "block", None)
    rows = {r[0]: r[1] for r in space.rows}
    assert space.groups[1].macs == rows["block.conv1"] + rows["block.conv2"]
    assert space.total_macs == sum(rows.values())


def test_candidates_are_validated():
    assert normalize_candidates([(4, 4), [4, 4], (2, 3)]) == ((4, 4), (2, 3))
    for bad in ([], [(9, 4)], [(4,)], "44"):
        with pytest.raises(sdk.ConfigError):
            normalize_candidates(bad)


def test_target_restriction_explicit_and_by_name():
    assert restrict_to_target(PAPER_CANDIDATES, [(4, 4), (8, 4), (5, 5)]) == ((4, 4), (8, 4))
    with pytest.raises(sdk.ConfigError, match="none of the candidates"):
        restrict_to_target(PAPER_CANDIDATES, [(8, 8)])
    pytest.importorskip("targets")
    assert restrict_to_target(PAPER_CANDIDATES, "integer") == PAPER_CANDIDATES
    assert restrict_to_target(((4, 4), (8, 8)), "onnxruntime") == ((8, 8),)
    with pytest.raises(sdk.ConfigError, match="onnxruntime"):
        restrict_to_target(PAPER_CANDIDATES, "onnxruntime")


def test_search_with_target_uses_only_allowed_pairs(tiny, loaders):
    allowed = [(2, 3), (3, 4)]
    res = sdk.search(tiny, *loaders, b_max=3.5, target=allowed, epochs=1, progress=False, steps_per_epoch=2)
    assert set(res.config.values()) <= {(2, 3), (3, 4)}
    assert all(len(p) == 2 for p in res.probs.values())


def test_infeasible_budget_names_minimum_and_fix(tiny, loaders):
    with pytest.raises(sdk.BudgetInfeasible) as e:
        sdk.search(tiny, *loaders, b_max=2.4, epochs=1, progress=False)
    msg = str(e.value)
    assert "2.4495" in msg and "minimum achievable" in msg and "Raise b_max" in msg
    with pytest.raises(sdk.BudgetInfeasible):
        sdk.search(tiny, *loaders, b_max=3.0, candidates=[(4, 4), (8, 8)], epochs=1, progress=False)
