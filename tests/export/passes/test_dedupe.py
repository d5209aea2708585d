import numpy as np

from export.passes import DedupeQuantizers
from tests.export._graphs import UINT8, Builder, copy, data, ops, run


def test_identical_quantizers_on_one_tensor_merge_different_ones_stay():
    b = Builder()
    a = b.qcdq("x", 0.1, UINT8, 0, 15)
    c = b.qcdq("x", 0.1, UINT8, 0, 15)
    d = b.qcdq("x", 0.2, UINT8, 0, 15)
    b.node("Sum", [a, c, d], "y")
    model = b.model()
    before = run(copy(model), data())
    out, changed = DedupeQuantizers().apply(model)
    assert changed and ops(out).count("QuantizeLinear") == 2 and ops(out).count("Clip") == 2
    np.testing.assert_array_equal(run(out, data()), before)
