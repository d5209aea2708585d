import numpy as np

from export.passes import MergeClips
from tests.export._graphs import UINT8, Builder, copy, data, ops, run


def _two_clips(lo2: int, hi2: int) -> Builder:
    b = Builder()
    s, z = b.const(0.1), b.const(0, UINT8)
    q = b.node("QuantizeLinear", ["x", s, z])
    c = b.node("Clip", [q, b.const(0, UINT8), b.const(15, UINT8)])
    c = b.node("Clip", [c, b.const(lo2, UINT8), b.const(hi2, UINT8)])
    b.node("DequantizeLinear", [c, s, z], "y")
    return b


def test_consecutive_integer_clips_merge_to_the_tighter_bounds():
    model = _two_clips(3, 40).model()
    before = run(copy(model), data())
    out, changed = MergeClips().apply(model)
    assert changed and ops(out).count("Clip") == 1
    np.testing.assert_array_equal(run(out, data()), before)


def test_disjoint_clips_are_left_alone():
    out, changed = MergeClips().apply(_two_clips(20, 40).model())
    assert not changed and ops(out).count("Clip") == 2
