"""The integer runtime's cycle estimates (runtimes/integer/cost.py) on the targets' MAC-array cost model."""

from __future__ import annotations

import pytest

import targets
from runtimes.integer import CostModel, integer_cycles
from sdk.cost import LayerCost
from sdk.errors import InputError


# -- cycles -------------------------------------------------------------------------------------------------
def test_cycles_follow_the_bit_serial_model():
    rows = [LayerCost("a", 1000, 10, 8, 8), LayerCost("b", 1000, 10, 2, 4), {"name": "c", "macs": 256,
            "w_bits": 4, "a_bits": 4}]  # fmt: skip
    report = integer_cycles(rows, array=CostModel(mac_rows=4, mac_cols=4, clock_mhz=100.0))
    assert [r.cycles for r in report.layers] == [-(-1000 * 64 // 16), -(-1000 * 8 // 16), 256 * 16 // 16]
    assert report.cycles == sum(r.cycles for r in report.layers)
    assert report.ms == pytest.approx(report.cycles / 100e3)
    wide = integer_cycles(rows, array=CostModel(mac_rows=4, mac_cols=4, clock_mhz=200.0, w_unit=8, a_unit=8))
    assert [r.cycles for r in wide.layers] == [63, 63, 16]
    assert "total" in report.table()
    with pytest.raises(InputError, match="float"):
        integer_cycles([LayerCost("f", 10, 1, 32, 8)])


def test_the_mac_array_is_the_targets_cost_model():
    assert CostModel is targets.CostModel
    report = integer_cycles([LayerCost("a", 1000, 10, 8, 8)])  # default: the "integer" target's array
    assert report.array == targets.get("integer").cost
    with pytest.raises(InputError, match="positive"):
        CostModel(mac_rows=0, mac_cols=4, clock_mhz=1.0)
    with pytest.raises(InputError, match="no MAC array"):
        integer_cycles([LayerCost("a", 10, 1, 8, 8)], array=CostModel())
