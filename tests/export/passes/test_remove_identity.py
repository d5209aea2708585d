import numpy as np

from export.passes import RemoveIdentity
from tests.export._graphs import Builder, copy, data, ops, run


def test_identity_dropout_and_identity_bn_removed_real_bn_kept():
    b = Builder()
    t = b.node("Identity", ["x"])
    t = b.node("Dropout", [t])
    c = 4
    one, zero = b.const(np.ones(c)), b.const(np.zeros(c))
    t = b.node("BatchNormalization", [t, one, zero, zero, b.const(np.ones(c) - 1e-5)], epsilon=1e-5)
    b.node("BatchNormalization", [t, b.const(np.full(c, 2.0)), zero, zero, one], "y", epsilon=1e-5)
    model = b.model()
    before = run(copy(model), data())
    out, changed = RemoveIdentity().apply(model)
    assert changed
    assert ops(out).count("BatchNormalization") in (1, 2) and "Identity" not in ops(out)
    assert "Dropout" not in ops(out)
    np.testing.assert_allclose(run(out, data()), before, rtol=0, atol=1e-6)


def test_identity_producing_the_graph_output():
    b = Builder()
    t = b.node("Relu", ["x"])
    b.node("Identity", [t], "y")
    out, changed = RemoveIdentity().apply(b.model())
    assert changed and ops(out) == ["Relu"] and out.graph.node[0].output[0] == "y"
