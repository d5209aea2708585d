import numpy as np

from export._graph import toposort
from export.passes import QuantizeBeforeMaxPool
from tests.export._graphs import UINT8, Builder, copy, data, ops, run


def _stem(readers: int = 1):
    b = Builder()
    x = b.qcdq("x", 0.05, UINT8, 0, 255)
    h = b.node("Relu", [b.qconv(x, "conv1", 4, 4, 0.05)])
    p = b.node("MaxPool", [h], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    y = b.qcdq(p, 0.03, UINT8, 0, 15)
    if readers == 2:
        y = b.node("Add", [y, b.qcdq(p, 0.01, UINT8, 0, 255)])
    b.qconv(y, "conv2", 4, 4, 0.03, out="y")
    return b.model()


def test_quantizer_moves_before_the_maxpool_with_its_clip_and_the_same_codes():
    model = _stem()
    xs = data(scale=4.0)
    before = run(copy(model), xs)
    out, changed = QuantizeBeforeMaxPool().apply(model)
    assert changed
    toposort(out)
    body = [op for op in ops(out) if op not in ("QuantizeLinear", "Clip", "DequantizeLinear")]
    assert body == ["Conv", "Relu", "MaxPool", "Conv"]
    i = ops(out).index("MaxPool")
    assert ops(out)[i - 3 : i + 3] == ["QuantizeLinear", "Clip", "DequantizeLinear", "MaxPool"] + [
        "QuantizeLinear",
        "DequantizeLinear",  # the clip after the pool had nothing left to clip
    ]
    np.testing.assert_array_equal(run(out, xs), before)
    assert QuantizeBeforeMaxPool().apply(out)[1] is False  # the pool now reads codes: done


def test_maxpool_read_by_two_quantizers_is_left_alone():
    model = _stem(readers=2)
    n = len(model.graph.node)
    out, changed = QuantizeBeforeMaxPool().apply(model)
    assert not changed and len(out.graph.node) == n
