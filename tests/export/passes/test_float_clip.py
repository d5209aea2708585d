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


def test_signed_only_moves_the_narrow_range_bound_and_keeps_unsigned_qcdq():
    b = Builder()
    t = b.qcdq("x", 0.05, INT8, -127, 127)
    b.qcdq(t, 0.1, UINT8, 0, 15, out="y")
    model = b.model()
    x = data(scale=8.0)
    before = run(copy(model), x)
    out, changed = FloatClip(signed_only=True).apply(model)
    assert changed
    toposort(out)
    assert ops(out) == [
        "Clip",
        "QuantizeLinear",
        "DequantizeLinear",
        "QuantizeLinear",
        "Clip",
        "DequantizeLinear",
    ]
    assert out.graph.node[0].input[2] == ""  # -127 is the only bound the int8 container lacks
    np.testing.assert_array_equal(run(out, x), before)
