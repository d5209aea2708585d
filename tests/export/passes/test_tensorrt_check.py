import numpy as np
import pytest

from export.passes.tensorrt_check import TensorRTCheck
from sdk.errors import ConfigError
from tests.export._graphs import INT8, Builder


def _conv(b: Builder, x: str) -> None:
    w = b.node("DequantizeLinear", [b.const(np.ones((4, 4, 1, 1)), INT8), b.const(0.1), b.const(0, INT8)])
    b.node("Conv", [x, w], "y", name="conv")


def test_a_graph_tensorrt_takes_passes_unchanged():
    b = Builder()
    _conv(b, b.qcdq("x", 0.05, INT8, -128, 127))
    b.nodes = [n for n in b.nodes if n.op_type != "Clip"]  # Q -> DQ directly
    b.nodes[1].input[0] = b.nodes[0].output[0]
    model = b.model()
    assert TensorRTCheck().apply(model) == (model, False)


def test_an_integer_clip_between_q_and_dq_is_refused_naming_the_rule():
    b = Builder()
    _conv(b, b.qcdq("x", 0.05, INT8, 0, 15))
    with pytest.raises(ConfigError, match=r"\[int8_read_by_dq_only\].*target='tensorrt'"):
        TensorRTCheck().apply(b.model())
