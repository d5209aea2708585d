import numpy as np
import pytest

from export._graph import toposort
from export.passes import KeepResidualRounding
from tests.export._graphs import INT8, UINT8, Builder, copy, data, ops, run


def _residual(conv_readers: int = 1, sum_readers: int = 1):
    """x -> conv -> int8 QCDQ, plus a ReLU skip -> uint8 QCDQ, summed and re-quantized to 4 bits."""
    b = Builder()
    x = b.qcdq("x", 0.05, UINT8, 0, 255)
    conv = b.qconv(x, "conv", 4, 4, 0.05)
    a = b.qcdq(conv, 0.0531, INT8, -127, 127)
    skip = b.qcdq(b.node("Relu", ["x"]), 0.0173, UINT8, 0, 255)
    total = b.node("Add", [a, skip], name="add")
    s = b.qcdq(total, 0.377, UINT8, 0, 15)
    if sum_readers == 2:  # a second quantizer reads the sum: OpenVINO does not quantize it inside the conv
        s = b.node("Add", [s, b.qcdq(total, 0.031, INT8, -127, 127)])
    if conv_readers == 2:  # the conv's float output is read twice: OpenVINO cannot fuse its quantizer
        s = b.node("Add", [s, b.node("Relu", [conv])])
    b.node("Identity", [s], out="y")
    return b.model()


def test_the_conv_behind_a_residual_operand_gets_an_identity_first_post_op():
    model = _residual()
    xs = data(scale=2.0)
    before = run(copy(model), xs)
    out, changed = KeepResidualRounding().apply(model)
    assert changed
    toposort(out)
    (relu,) = [n for n in out.graph.node if n.op_type == "LeakyRelu"]  # the conv operand only, not the skip
    assert relu.input[0] == next(n for n in out.graph.node if n.name == "conv").output[0]
    assert [a.f for a in relu.attribute] == [1.0]
    assert [n.op_type for n in out.graph.node if relu.output[0] in n.input] == ["QuantizeLinear"]
    np.testing.assert_array_equal(run(out, xs), before)
    assert KeepResidualRounding().apply(out)[1] is False


@pytest.mark.parametrize("readers", [{"conv_readers": 2}, {"sum_readers": 2}])
def test_where_openvino_does_not_fuse_the_sum_the_graph_is_left_alone(readers):
    out, changed = KeepResidualRounding().apply(_residual(**readers))
    assert not changed and "LeakyRelu" not in ops(out)
