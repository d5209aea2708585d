import numpy as np

from export.passes import IntegerOps
from tests.export._graphs import UINT8, Builder, copy, data, ops, run

XS = 0.05


def _conv_feeding(n_quantizers: int) -> Builder:
    b = Builder()
    x = b.qcdq("x", XS, UINT8, 0, 255)
    y = b.qconv(x, "conv", 4, 6, XS)
    outs = [b.qcdq(y, 0.02 * (k + 1), UINT8, 0, 15) for k in range(n_quantizers)]
    b.node("Sum", outs, "y") if len(outs) > 1 else b.node("Identity", outs, "y")
    return b


def test_conv_read_by_two_quantizers_becomes_conv_integer_exactly():
    model = _conv_feeding(2).model()
    x = data(scale=4.0)
    before = run(copy(model), x)
    out, changed = IntegerOps().apply(model)
    assert changed and "ConvInteger" in ops(out) and "Conv" not in ops(out)
    conv = next(n for n in out.graph.node if n.op_type == "ConvInteger")
    assert conv.name == "conv"
    np.testing.assert_allclose(run(out, x), before, rtol=0, atol=1e-6)


def test_conv_ort_can_fuse_is_left_alone():
    out, changed = IntegerOps().apply(_conv_feeding(1).model())
    assert not changed and "Conv" in ops(out)


def test_gemm_with_a_float_reader_becomes_matmul_integer():
    b = Builder()
    x = b.qcdq(b.node("Flatten", ["x"], axis=1), XS, UINT8, 0, 255)
    g = b.qgemm(x, "fc", 16, 5, XS)
    q = b.qcdq(g, 0.01, UINT8, 0, 255)
    b.node("Add", [q, g], "y")
    model = b.model(c=1, hw=4)
    x = data(c=1, hw=4, scale=4.0)
    before = run(copy(model), x)
    out, changed = IntegerOps().apply(model)
    assert changed and "MatMulInteger" in ops(out)
    np.testing.assert_allclose(run(out, x), before, rtol=0, atol=1e-6)
