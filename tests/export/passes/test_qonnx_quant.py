import numpy as np

from export.passes import Prune, run_passes
from export.passes.qonnx_quant import QONNX_DOMAIN, QdqToQuant
from tests.export._graphs import INT8, UINT8, Builder, ops


def test_chains_become_quant_nodes_weights_keep_their_bits_biases_turn_float():
    b = Builder()
    x = b.qcdq("x", 0.05, INT8, -7, 7)  # signed narrow 4-bit
    y = b.qconv(x, "conv", 4, 4, 0.05)
    b.qcdq(y, 0.1, UINT8, 0, 15, out="y")  # unsigned 4-bit
    out = run_passes(b.model(), [QdqToQuant({"conv": 3}), Prune()])
    assert sorted(ops(out)) == ["Conv", "Quant", "Quant", "Quant"]
    assert any(o.domain == QONNX_DOMAIN for o in out.opset_import)
    inits = {t.name: t for t in out.graph.initializer}
    attrs = {}
    for n in out.graph.node:
        if n.op_type == "Quant":
            a = {x.name: (x.i if x.type == x.INT else x.s.decode()) for x in n.attribute}
            bits = (
                int(np.frombuffer(inits[n.input[3]].raw_data, np.float32)[0])
                if inits[n.input[3]].raw_data
                else None
            )
            attrs[n.name] = (bits, a["signed"], a["narrow"], a["rounding_mode"])
    assert sorted(attrs.values()) == [(3, 1, 1, "ROUND"), (4, 0, 0, "ROUND"), (4, 1, 1, "ROUND")]
    conv = next(n for n in out.graph.node if n.op_type == "Conv")
    assert conv.input[2] in inits  # the bias is a float initializer now
