import numpy as np

from export._graph import toposort
from export.inspect import float_layers, ort_kernel_report
from export.passes import (
    FoldActivationIntoQuantize,
    MergeClips,
    Prune,
    QuantizeBeforeMaxPool,
    SplitConvPerQuantizer,
    SplitMaxPoolPerQuantizer,
    run_passes,
)
from tests.export._graphs import UINT8, Builder, copy, data, ops, run

PASSES = [
    FoldActivationIntoQuantize(),
    MergeClips(),
    SplitMaxPoolPerQuantizer(),
    QuantizeBeforeMaxPool(),
    SplitConvPerQuantizer(),
    Prune(),
]


def _mixed_stem():
    """A mixed-precision ResNet stem: the pooled output feeds a 4-bit conv and an 8-bit residual operand."""
    b = Builder()
    x = b.qcdq("x", 0.05, UINT8, 0, 255)
    p = b.node(
        "MaxPool", [b.node("Relu", [b.qconv(x, "conv1", 4, 4, 0.05)])], kernel_shape=[3, 3], pads=[1] * 4
    )
    h = b.qcdq(
        b.qconv(b.qcdq(p, 0.03, UINT8, 0, 15), "layer1.conv1", 4, 4, 0.03, seed=1), 0.02, UINT8, 0, 255
    )
    b.node("Add", [h, b.qcdq(p, 0.01, UINT8, 0, 255)], out="y")
    return b.model()


def test_each_quantizer_of_the_pooled_stem_gets_its_own_pool_and_conv_with_the_same_result():
    model = _mixed_stem()
    xs = data(scale=4.0)
    before = run(copy(model), xs)
    assert float_layers(ort_kernel_report(model), ["conv1"]) == ["conv1"]  # two quantizers: a float conv
    out = run_passes(model, PASSES)
    toposort(out)
    assert ops(out).count("MaxPool") == 2 and ops(out).count("Conv") == 3 and "Relu" not in ops(out)
    for node in out.graph.node:
        if node.op_type in ("Conv", "MaxPool") and not node.name.startswith("layer1"):
            assert [n.op_type for n in out.graph.node if node.output[0] in n.input] == ["QuantizeLinear"]
    np.testing.assert_array_equal(run(out, xs), before)
    assert float_layers(ort_kernel_report(out), ["conv1", "layer1.conv1"]) == []
    assert not any(p.apply(out)[1] for p in PASSES[2:])


def test_a_pool_also_read_in_float_is_left_alone():
    b = Builder()
    p = b.node(
        "MaxPool", [b.qconv(b.qcdq("x", 0.05, UINT8, 0, 255), "conv1", 4, 4, 0.05)], kernel_shape=[2, 2]
    )
    b.node("Add", [b.qcdq(p, 0.03, UINT8, 0, 15), p], out="y")
    model = b.model()
    n = len(model.graph.node)
    for split in (SplitMaxPoolPerQuantizer(), SplitConvPerQuantizer()):
        model, changed = split.apply(model)
        assert not changed and len(model.graph.node) == n
