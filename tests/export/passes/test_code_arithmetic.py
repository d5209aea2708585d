import numpy as np
import onnx
import pytest
import torch

from export.passes import CodeArithmetic
from tests.export._graphs import INT8, UINT8, Builder, copy, data, ops, run

XS = 0.05


def _codes(model: onnx.ModelProto, name: str) -> np.ndarray:
    return next(onnx.numpy_helper.to_array(t) for t in model.graph.initializer if t.name == name)


def _exact_conv(model: onnx.ModelProto, x: np.ndarray, dtype: int, lo: int, hi: int) -> np.ndarray:
    """The QDQ ``model``'s layer in exact arithmetic, rounded once to float32 (float64 holds these integer
    sums and their products with a float32 scale exactly)."""
    xc = np.clip(np.round(x.astype(np.float64) / np.float64(np.float32(XS))), lo, hi)
    w = _codes(model, "conv.weight_codes").astype(np.float64)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    dq_b = next(
        n
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and inits.get(n.input[0], x).dtype == np.int32
    )
    b, sb = inits[dq_b.input[0]].astype(np.float64), inits[dq_b.input[1]].astype(np.float64)
    acc = torch.nn.functional.conv2d(torch.from_numpy(xc), torch.from_numpy(w), padding=1).numpy()
    return ((acc + b.reshape(1, -1, 1, 1)) * sb.reshape(1, -1, 1, 1)).astype(np.float32)


@pytest.mark.parametrize(("dtype", "lo", "hi"), [(UINT8, 0, 255), (INT8, -127, 127)])
def test_conv_accumulates_codes_exactly_and_rounds_once(dtype, lo, hi):
    b = Builder()
    b.qconv(b.qcdq("x", XS, dtype, lo, hi), "conv", 64, 8, XS, seed=3, out="y")
    model = b.model(c=64)
    x = data(c=64, scale=4.0)
    before, exact = run(copy(model), x), _exact_conv(model, x, dtype, lo, hi)
    out, changed = CodeArithmetic().apply(model)
    assert changed and ops(out).count("Conv") == 1 and "Mul" in ops(out)
    conv = next(n for n in out.graph.node if n.op_type == "Conv")
    assert conv.name == "conv"
    producers = {o: n for n in out.graph.node for o in n.output}
    w_dq = producers[conv.input[1]]  # weights stay int8 codes behind a unit-scale DequantizeLinear
    assert w_dq.op_type == "DequantizeLinear" and _codes(out, w_dq.input[0]).dtype == np.int8
    y = run(out, x)
    assert (before != exact).any()  # the float conv on dequantized values rounds as it sums
    np.testing.assert_array_equal(y, exact)
    np.testing.assert_allclose(y, before, rtol=1e-5, atol=1e-5)  # the same layer, in other roundings
    assert not CodeArithmetic().apply(out)[1]  # a fixed point


def test_gemm_per_channel_scales_along_the_output_features():
    b = Builder()
    x = b.qcdq(b.node("Flatten", ["x"], axis=1), XS, UINT8, 0, 255)
    b.qgemm(x, "fc", 16, 5, XS, out="y")
    model = b.model(c=1, hw=4)
    x = data(c=1, hw=4, scale=4.0)
    before = run(copy(model), x)
    out, changed = CodeArithmetic().apply(model)
    assert changed and "Gemm" in ops(out) and "Mul" in ops(out)
    np.testing.assert_allclose(run(out, x), before, rtol=1e-5, atol=1e-6)


def test_float_layers_are_left_alone():
    b = Builder()
    w = b.const(np.random.default_rng(0).standard_normal((4, 4, 3, 3)))
    b.node("Conv", ["x", w], "y", name="conv", pads=[1, 1, 1, 1])
    out, changed = CodeArithmetic().apply(b.model())
    assert not changed and ops(out) == ["Conv"]
