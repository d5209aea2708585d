import pytest

from export.passes import PowerOfTwoCheck
from export.passes.power_of_two import is_power_of_two
from sdk.errors import ConfigError
from tests.export._graphs import UINT8, Builder


def test_power_of_two_scales_pass_others_name_the_fix():
    b = Builder()
    b.qcdq("x", 0.125, UINT8, 0, 15, out="y")
    assert PowerOfTwoCheck().apply(b.model())[1] is False
    b = Builder()
    b.qcdq("x", 0.1, UINT8, 0, 15, out="y")
    with pytest.raises(ConfigError, match="power_of_two=True"):
        PowerOfTwoCheck().apply(b.model())


def test_is_power_of_two():
    assert is_power_of_two([0.5, 2.0, 2.0**-20])
    assert not is_power_of_two([0.5, 0.3]) and not is_power_of_two([-0.5]) and not is_power_of_two([0.0])
