import numpy as np

from export._graph import toposort
from export.passes import SplitAddPerQuantizer
from tests.export._graphs import INT8, UINT8, Builder, copy, data, ops, run


def _residual(second_reader: str = "QuantizeLinear"):
    b = Builder()
    a = b.qcdq("x", 0.05, INT8, -127, 127)
    skip = b.qcdq(b.node("Relu", ["x"]), 0.02, UINT8, 0, 255)
    s = b.node("Add", [a, skip], name="add")
    four_bit = b.qcdq(s, 0.4, UINT8, 0, 15)
    other = b.qcdq(s, 0.03, INT8, -127, 127) if second_reader == "QuantizeLinear" else b.node("Relu", [s])
    b.node("Add", [four_bit, other], out="y")
    return b.model()


def test_each_quantizer_of_a_quantized_add_gets_its_own_add_with_the_same_result():
    model = _residual()
    xs = data(scale=3.0)
    before = run(copy(model), xs)
    out, changed = SplitAddPerQuantizer().apply(model)
    assert changed
    toposort(out)
    sums = [n for n in out.graph.node if n.op_type == "Add" and n.name.startswith("add")]
    assert len(sums) == 2 and list(sums[0].input) == list(reversed(sums[1].input))
    for add in sums:
        assert [n.op_type for n in out.graph.node if add.output[0] in n.input] == ["QuantizeLinear"]
    np.testing.assert_array_equal(run(out, xs), before)
    assert SplitAddPerQuantizer().apply(out)[1] is False


def test_an_add_also_read_in_float_is_left_alone():
    model = _residual(second_reader="Relu")
    out, changed = SplitAddPerQuantizer().apply(model)
    assert not changed and ops(out).count("Add") == 2
