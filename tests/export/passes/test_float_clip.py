import numpy as np

from export._graph import toposort
from export.passes import FloatClip
from tests.export._graphs import INT8, UINT8, Builder, copy, data, ops, run


def test_integer_clip_becomes_float_clip_before_quantize_with_the_same_codes():
    b = Builder()
    t = b.qcdq("x", 0.05, INT8, -7, 7)
    b.qcdq(t, 0.1, UINT8, 0, 15, out="y")
    model = b.model()
    x = data(scale=4.0)
    before = run(copy(model), x)
    out, changed = FloatClip().apply(model)
    assert changed
    toposort(out)
    assert ops(out) == ["Clip", "QuantizeLinear", "DequantizeLinear"] * 2
    np.testing.assert_array_equal(run(out, x), before)
