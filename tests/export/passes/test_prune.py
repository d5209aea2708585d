from export.passes import Prune
from tests.export._graphs import Builder, ops


def test_dead_nodes_and_unused_initializers_go():
    b = Builder()
    b.node("Relu", ["x"], "y")
    b.node("Add", ["x", b.const(1.0)])  # nobody reads it
    b.const(2.0)  # unused
    out, changed = Prune().apply(b.model())
    assert changed and ops(out) == ["Relu"] and len(out.graph.initializer) == 0
