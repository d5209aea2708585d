"""Pass names: every pass file registers its names, and a target's list is checked against their rules."""

from __future__ import annotations

import pytest

import targets
from export.lowering import qdq_phases
from export.options import DEFAULT_PASSES, LoweringOptions
from export.passes import FloatClip, IntegerOps, Prune
from export.passes.registry import check_lowering, pass_names, pass_spec, register_pass
from sdk.errors import InputError


def test_every_target_pass_is_registered_and_discovered():
    used = {p for n in targets.names() for p in targets.get(n).lowering}
    assert used <= set(pass_names())
    assert {"float_clip", "signed_float_clip", "integer_ops", "power_of_two_check"} <= set(pass_names())


def test_parametrised_names_build_their_variant():
    assert pass_spec("signed_float_clip").make() == FloatClip(signed_only=True)
    assert pass_spec("float_clip").make() == FloatClip(signed_only=False)


def test_phases_split_the_list_by_stage_in_order():
    graph, engine = qdq_phases(LoweringOptions((*DEFAULT_PASSES, "uint8_activations", "integer_ops")), ["a"])
    assert [type(p).__name__ for p in graph][-3:] == ["DedupeQuantizers", "ActivationContainers", "Prune"]
    assert [type(p) for p in engine] == [IntegerOps, Prune]


@pytest.mark.parametrize(
    ("names", "match"),
    [
        (("merge_clip",), "Did you mean 'merge_clips'"),
        (("merge_clips", "merge_clips"), "twice"),
        (("split_add", "merge_clips"), "list every graph pass before the engine passes"),
        (("integer_ops",), "needs 'uint8_activations'"),
        (("int8_activations", "uint8_activations"), "exclude each other"),
        (("uint8_activations", "integer_ops", "code_arithmetic"), "exclude each other"),
        (("quantize_before_maxpool", "split_maxpool"), "must come after 'split_maxpool'"),
        (("slice_strided_pointwise", "signed_float_clip"), "must come after 'signed_float_clip'"),
    ],
)
def test_broken_rules_are_refused_with_the_fix(names, match):
    with pytest.raises(InputError, match=match):
        check_lowering(names)


def test_keys_follow_the_list_order_and_opset():
    a = LoweringOptions((*DEFAULT_PASSES, "split_add"))
    assert a.key() == LoweringOptions(list(a.passes)).key()
    assert a.key() != LoweringOptions(DEFAULT_PASSES).key()
    assert a.key() != LoweringOptions(a.passes, opset=18).key()
    assert LoweringOptions.from_dict(a.to_dict()) == a


def test_duplicate_pass_names_raise():
    with pytest.raises(ValueError, match="already registered"):
        register_pass("merge_clips", Prune, stage="graph")
