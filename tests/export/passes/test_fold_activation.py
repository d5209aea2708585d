import numpy as np

from export._graph import Graph
from export._qdq import int_clip
from export.passes import FoldActivationIntoQuantize, MergeClips, Prune, run_passes
from tests.export._graphs import INT8, UINT8, Builder, copy, data, ops, run


def _relu6_then_qcdq() -> Builder:
    b = Builder()
    r = b.node("Clip", ["x", b.const(0.0), b.const(6.0)])  # ReLU6
    b.qcdq(r, 0.5, UINT8, 0, 255, out="y")  # 6 / 0.5 = code 12 < 255: the ReLU6 bound matters
    return b


def test_relu6_moves_behind_quantize_exactly():
    model = _relu6_then_qcdq().model()
    x = data(scale=8.0)
    before = run(copy(model), x)
    out = run_passes(model, [FoldActivationIntoQuantize(), MergeClips(), Prune()])
    assert ops(out) == ["QuantizeLinear", "Clip", "DequantizeLinear"]
    graph = Graph(out)
    assert int_clip(graph, out.graph.node[1])[1:] == (0, 12)
    np.testing.assert_array_equal(run(out, x), before)


def test_relu_with_a_float_reader_is_kept_for_it_and_signed_quantizers_get_lo_zero():
    b = Builder()
    r = b.node("Relu", ["x"])
    s = b.qcdq(r, 0.1, INT8, -127, 127)
    b.node("Add", [s, r], "y")
    model = b.model()
    before = run(copy(model), data())
    out, changed = FoldActivationIntoQuantize().apply(model)
    assert changed and "Relu" in ops(out)
    out = run_passes(out, [MergeClips()])
    np.testing.assert_array_equal(run(out, data()), before)
    clip = next(n for n in out.graph.node if n.op_type == "Clip")
    assert int_clip(Graph(out), clip)[1:] == (0, 127)
