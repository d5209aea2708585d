"""export._qdq helpers on their own."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from export._qdq import QuantParams, quantize_value


def _params(scale: float, zero_point: int, dtype: int) -> QuantParams:
    zp = np.array(zero_point, np.uint8 if dtype == TensorProto.UINT8 else np.int8)
    return QuantParams(np.array(scale, np.float32), zp, dtype, 1)


def test_quantize_value_rounds_the_exact_quotient():
    """1.1570000648... / 0.026 (both float32) is 44.5000016 exactly, 44.5 in float32 (which rounds to 44)."""
    x, s = 1.1570000648498535, 0.026
    assert np.rint(np.float32(x) / np.float32(s)) == 44
    assert quantize_value(x, _params(s, 0, TensorProto.INT8)) == 45
    assert quantize_value(-x, _params(s, 0, TensorProto.INT8)) == -45
    assert quantize_value(x, _params(s, 128, TensorProto.UINT8)) == 173


def test_quantize_value_ties_to_even_and_saturates():
    p = _params(0.25, 0, TensorProto.INT8)
    assert [quantize_value(v, p) for v in (0.375, 0.625, -0.375, 1e9, -np.inf)] == [2, 2, -2, 127, -128]
