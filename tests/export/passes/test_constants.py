import numpy as np
from onnx import helper, numpy_helper

from export.passes import ConstantsToInitializers
from tests.export._graphs import Builder, copy, data, ops, run


def test_constant_nodes_become_initializers_with_the_same_value():
    b = Builder()
    b.nodes.append(
        helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.float32([2.0]), "v"))
    )
    b.nodes.append(helper.make_node("Constant", [], ["f"], value_float=0.5))
    b.node("Mul", ["x", "k"], "m")
    b.node("Add", ["m", "f"], "y")
    model = b.model()
    before = run(copy(model), data())
    out, changed = ConstantsToInitializers().apply(model)
    assert changed and "Constant" not in ops(out)
    np.testing.assert_array_equal(run(out, data()), before)
    assert ConstantsToInitializers().apply(out)[1] is False
