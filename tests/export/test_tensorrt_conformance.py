"""The tensorrt/jetson artifacts against TensorRT's documented rules (``export.tensorrt_rules``), no GPU.

Every zoo model x 3 random mixed configs x {tensorrt, jetson}: the artifact of the new lowering (the model
quantized for the target, then the target's passes and ``tests.export._tensorrt.TENSORRT_TAIL``) breaks no
rule; today's artifact (the model quantized as before, the target's old lowering) is refused at export or
breaks rules, and the test says how (the issue's "fails on today's artifacts" figure); the old lowering of
the model quantized for the target (which it then exports) breaks rules too (int32 bias, integer Clip).
The printed lines are the figures: ``pytest -s -k conformance``.
"""

from __future__ import annotations

from collections import Counter

import pytest

import sdk
import targets
from export.onnx_qdq import Traced
from export.tensorrt_rules import RULES, violations
from sdk.errors import ConfigError
from tests.export._helpers import quantized
from tests.export._tensorrt import lower_old, lower_tensorrt

TRT_TARGETS = ("tensorrt", "jetson")
SLOW = {"resnet18", "resnet50"}
CASES = [
    pytest.param(name, seed, marks=[pytest.mark.slow] if name in SLOW else [], id=f"{name}-cfg{seed}")
    for name in sdk.models.names()
    for seed in (0, 1, 2)
]


def old_failures(traced: Traced, target: str) -> Counter[str]:
    """Rules today's artifact breaks (``refused`` when today's export refuses the model)."""
    try:
        model = lower_old(traced, target)
    except ConfigError:
        return Counter(refused=1)
    return Counter(rule for rule, _ in violations(model))


@pytest.mark.parametrize(("name", "seed"), CASES)
def test_conformance_new_lowering_passes_and_old_fails(name: str, seed: int) -> None:
    old = Traced(*quantized(name, seed))
    for target in TRT_TARGETS:
        new = Traced(*quantized(name, seed, target=target))
        found = violations(lower_tensorrt(new, target))  # its last pass raises on a violation, too
        failed, capped = old_failures(old, target), old_failures(new, target)
        print(f"\n[trt conformance] {name} cfg{seed} {target}: {len(RULES)} rules; new lowering "
              f"{len(found)} violations; old lowering {dict(failed)}; old lowering of the model quantized "
              f"for {target} {dict(capped)}")  # fmt: skip
        assert found == []
        assert failed, "today's artifact passes every rule: the checker cannot tell the lowerings apart"
        assert "refused" not in capped and capped, "the old lowering's own faults went unnoticed"


@pytest.mark.parametrize("name", [n for n in sdk.models.names() if n not in SLOW])
def test_conformance_of_what_a_tensorrt_search_returns(name: str) -> None:
    """A search for "tensorrt" draws from the target's native pairs, (8, 8) only: every layer there."""
    assert targets.get("tensorrt").native_pairs == ((8, 8),)
    q, example = quantized(name, 0, target="tensorrt", pair=(8, 8))
    assert violations(lower_tensorrt(Traced(q, example))) == []
