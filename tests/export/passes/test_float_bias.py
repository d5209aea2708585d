import numpy as np
from onnx import TensorProto

from export._graph import Graph
from export.passes.float_bias import FloatBias
from tests.export._graphs import INT8, INT32, Builder, copy, data, ops, run


def _conv(bias_codes: object, bias_scale: object) -> Builder:
    b = Builder()
    x = b.qcdq("x", 0.05, INT8, -127, 127)
    w = b.node(
        "DequantizeLinear",
        [
            b.const(np.ones((3, 4, 1, 1)), INT8, "conv.weight_codes"),
            b.const([0.1, 0.2, 0.3]),
            b.const([0] * 3, INT8),
        ],
        axis=0,
    )
    codes = b.const(bias_codes, INT32, "conv.bias_codes")
    bias = b.node("DequantizeLinear", [codes, b.const(bias_scale), b.const([0] * 3, INT32)], axis=0)
    b.node("Conv", [x, w, bias], "y", name="conv")
    return b


def test_int32_bias_dequantize_becomes_a_float_initializer_computing_the_same():
    # 2**24 + 1 is not a float32: the folded value must round it as DequantizeLinear does
    model = _conv([-50, 7, 2**24 + 1], [0.005, 0.01, 3e-9]).model()
    x = data()
    before = run(copy(model), x)
    out, changed = FloatBias().apply(model)
    assert changed and ops(out).count("DequantizeLinear") == 2  # the activation's and the weight's stay
    g = Graph(out)
    conv = next(n for n in out.graph.node if n.op_type == "Conv")
    assert g.const_type(conv.input[2]) == TensorProto.FLOAT and conv.input[2] == "conv.bias"
    np.testing.assert_array_equal(run(out, x), before)
    assert FloatBias().apply(out)[1] is False  # nothing left to fold


def test_int8_weight_dequantize_is_kept():
    b = Builder()
    w = b.node("DequantizeLinear", [b.const(np.ones((4, 4, 1, 1)), INT8), b.const(0.1), b.const(0, INT8)])
    b.node("Conv", ["x", w], "y", name="conv")
    out, changed = FloatBias().apply(b.model())
    assert not changed and ops(out) == ["DequantizeLinear", "Conv"]
