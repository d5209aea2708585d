import numpy as np

from export._graph import toposort
from export.passes import UnfusedResidualAdd
from tests.export._graphs import INT8, UINT8, Builder, copy, data, ops, run


def _residual(conv_readers: int = 1):
    """x -> conv -> int8 QCDQ, plus a ReLU skip -> uint8 QCDQ, summed and re-quantized to 4 bits."""
    b = Builder()
    x = b.qcdq("x", 0.05, UINT8, 0, 255)
    conv = b.qconv(x, "conv", 4, 4, 0.05)
    a = b.qcdq(conv, 0.0531, INT8, -127, 127)
    skip = b.qcdq(b.node("Relu", ["x"]), 0.0173, UINT8, 0, 255)
    s = b.qcdq(b.node("Add", [a, skip], name="add"), 0.377, UINT8, 0, 15)
    if conv_readers == 2:  # the conv's float output is read twice: OpenVINO cannot fuse its quantizer
        s = b.node("Add", [s, b.node("Relu", [conv])])
    b.node("Identity", [s], out="y")
    return b.model()


def test_the_conv_operand_of_a_quantized_add_goes_through_an_identity_pool():
    model = _residual()
    xs = data(scale=2.0)
    before = run(copy(model), xs)
    out, changed = UnfusedResidualAdd().apply(model)
    assert changed
    toposort(out)
    add = next(n for n in out.graph.node if n.name == "add")
    pools = [n for n in out.graph.node if n.op_type == "MaxPool"]
    assert len(pools) == 1 and list(add.input)[0] == pools[0].output[0]  # the conv operand only
    assert [a.ints for a in pools[0].attribute if a.name == "kernel_shape"] == [[1, 1]]
    np.testing.assert_array_equal(run(out, xs), before)
    assert UnfusedResidualAdd().apply(out)[1] is False


def test_a_conv_whose_output_is_read_twice_is_left_alone():
    out, changed = UnfusedResidualAdd().apply(_residual(conv_readers=2))
    assert not changed and "MaxPool" not in ops(out)
