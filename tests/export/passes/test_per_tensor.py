import numpy as np
import pytest

from export._graph import Graph
from export._qdq import quant_params
from export.passes import PerTensorWeights
from sdk.errors import ConfigError
from tests.export._graphs import INT8, Builder


def _conv_weight(scales: list[float]) -> Builder:
    b = Builder()
    codes = b.const(np.ones((2, 4, 1, 1)), INT8, "conv.weight_codes")
    w = b.node("DequantizeLinear", [codes, b.const(scales), b.const([0, 0], INT8)], axis=0)
    b.node("Conv", ["x", w], "y", name="conv")
    return b


def test_equal_channel_scales_collapse_to_one():
    out, changed = PerTensorWeights().apply(_conv_weight([0.5, 0.5]).model())
    dq = out.graph.node[0]
    assert changed and quant_params(Graph(out), dq).per_tensor  # type: ignore[union-attr]


def test_distinct_channel_scales_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match="per_channel=False"):
        PerTensorWeights().apply(_conv_weight([0.5, 0.25]).model())
