import numpy as np

from export.passes import SliceStridedPointwise
from tests.export._graphs import UINT8, Builder, copy, data, ops, run


def test_strided_1x1_conv_becomes_integer_slice_and_stride_1_exactly():
    b = Builder()
    x = b.qcdq("x", 0.05, UINT8, 0, 255)
    b.qconv(x, "down", 4, 6, 0.05, k=1, stride=2, out="y")
    model = b.model()
    xs = data(scale=4.0)
    before = run(copy(model), xs)
    out, changed = SliceStridedPointwise().apply(model)
    assert changed and "Slice" in ops(out)
    conv = next(n for n in out.graph.node if n.op_type == "Conv")
    assert list(next(a.ints for a in conv.attribute if a.name == "strides")) == [1, 1]
    np.testing.assert_array_equal(run(out, xs), before)
