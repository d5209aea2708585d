import numpy as np
import pytest

from export._graph import Graph
from export._qdq import act_chains
from export.passes import ActivationContainers
from sdk.errors import ConfigError
from tests.export._graphs import INT8, UINT8, Builder, copy, data, run


def _signed_then_unsigned(unsigned_hi: int = 15) -> Builder:
    b = Builder()
    t = b.qcdq("x", 0.05, INT8, -127, 127)  # signed 8-bit narrow (network input)
    t = b.node("Relu", [t])
    b.qcdq(t, 0.1, UINT8, 0, unsigned_hi, out="y")
    return b


def test_uint8_moves_signed_codes_to_zero_point_128_exactly():
    model = _signed_then_unsigned().model()
    x = data(scale=4.0)
    before = run(copy(model), x)
    out, changed = ActivationContainers("uint8").apply(model)
    assert changed
    chains = act_chains(Graph(out))
    assert [(c.params.dtype, int(c.params.zero_point), c.lo, c.hi) for c in chains] == [
        (UINT8, 128, 1, 255),
        (UINT8, 0, 0, 15),
    ]
    np.testing.assert_array_equal(run(out, x), before)
    assert ActivationContainers("uint8").apply(out)[1] is False


def test_symmetric_int8_holds_unsigned_codes_up_to_127():
    model = _signed_then_unsigned(127).model()
    x = data(scale=4.0)
    before = run(copy(model), x)
    out, _ = ActivationContainers("int8").apply(model)
    assert {(c.params.dtype, int(c.params.zero_point)) for c in act_chains(Graph(out))} == {(INT8, 0)}
    np.testing.assert_array_equal(run(out, x), before)


def test_symmetric_int8_refuses_unsigned_8_bit_with_the_fix():
    b = Builder()
    t = b.qcdq("x", 0.1, UINT8, 0, 255)
    b.node("Relu", [t], "y")
    with pytest.raises(ConfigError, match="target=.tensorrt."):
        ActivationContainers("int8").apply(b.model())
