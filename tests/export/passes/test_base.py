from dataclasses import dataclass

import onnx
import pytest

from export.passes import Pass, PassesDidNotConverge, run_passes
from tests.export._graphs import Builder


@dataclass
class _Counter:
    left: int

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
        self.left -= 1
        return model, self.left >= 0


def test_runs_until_a_round_changes_nothing():
    b = Builder()
    b.node("Relu", ["x"], "y")
    p = _Counter(3)
    assert isinstance(p, Pass)
    run_passes(b.model(), [p])
    assert p.left == -1


def test_passes_that_undo_each_other_are_reported():
    b = Builder()
    b.node("Relu", ["x"], "y")
    with pytest.raises(PassesDidNotConverge):
        run_passes(b.model(), [_Counter(10**6)], max_rounds=5)
