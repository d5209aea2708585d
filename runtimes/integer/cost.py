"""Cycle estimates of the integer program on a bit-serial MAC array (torch-free).

The array and its cycle formula are :class:`sdk.cost.CostModel`, the one the targets price with; this module
only reads layer rows as the runtime sees them (``BopsReport.layers`` or a manifest's ``bops.layers``) and
refuses float layers, which cannot run on the array.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sdk.config import FLOAT_BITS
from sdk.cost import CostModel, CyclesReport, LayerCost, LayerCycles
from sdk.errors import InputError

__all__ = ["CostModel", "CyclesReport", "LayerCycles", "integer_cycles"]


def _row(r: LayerCost | Mapping[str, Any]) -> LayerCost:
    if isinstance(r, LayerCost):
        return r
    try:
        return LayerCost(str(r["name"]), int(r["macs"]), 0, int(r["w_bits"]), int(r["a_bits"]))
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(
            f"a layer row needs name, macs, w_bits, a_bits (a sdk.cost.LayerCost); got {r!r}."
        ) from e


def integer_cycles(
    rows: Iterable[LayerCost | Mapping[str, Any]], *, array: CostModel | None = None
) -> CyclesReport:
    """Cycles per layer (batch of one) on ``array`` (default: the "integer" target's) for BOPs rows. A layer
    float on either side cannot run on the integer array: InputError."""
    if array is None:
        import targets

        array = targets.get("integer").cost
    layers = [_row(r) for r in rows]
    for r in layers:
        if FLOAT_BITS in (r.w_bits, r.a_bits):
            raise InputError(
                f"layer {r.name!r} is float ({r.w_bits}, {r.a_bits}); the integer MAC array runs 2-8 bit "
                "layers only."
            )
    report = array.cycles_report(layers)
    if report is None:
        raise InputError("this cost model has no MAC array (it prices BOPs only); give mac_rows, mac_cols, "
                         "clock_mhz.")  # fmt: skip
    return report
