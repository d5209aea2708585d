"""Cycle estimates for a bit-serial MAC array running the integer program (torch-free, plain functions).

Model (documented because accelerator papers differ): the array has ``rows x cols`` processing elements at
``clock_mhz``. Each element multiplies a ``w_unit``-bit slice of a weight by an ``a_unit``-bit slice of an
activation and accumulates per cycle (Stripes/Loom/BISMO-style bit-serial arithmetic), so one w x a-bit MAC
costs ``ceil(w / w_unit) * ceil(a / a_unit)`` element-cycles. A layer of M MACs takes
``ceil(M * ceil(w / w_unit) * ceil(a / a_unit) / (rows * cols))`` cycles: ideal utilization, no memory stalls,
batch of one. With ``w_unit = a_unit = 1`` cycles are proportional to BOPs (Eq. 3), the quantity the search
minimizes; with 8-bit units every pair up to 8 x 8 costs one cycle per MAC (a plain int8 array).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sdk.config import FLOAT_BITS
from sdk.cost import LayerCost
from sdk.errors import InputError

__all__ = ["MacArray", "LayerCycles", "CyclesReport", "integer_cycles"]


@dataclass(frozen=True)
class MacArray:
    """A bit-serial MAC array (see the module docstring for the cycle model)."""

    rows: int = 16
    cols: int = 16
    clock_mhz: float = 200.0
    w_unit: int = 1
    a_unit: int = 1

    def __post_init__(self) -> None:
        for name in ("rows", "cols", "w_unit", "a_unit"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"MacArray.{name} must be a positive int, got {v!r}.")
        if not (
            isinstance(self.clock_mhz, (int, float)) and math.isfinite(self.clock_mhz) and self.clock_mhz > 0
        ):
            raise InputError(f"MacArray.clock_mhz must be a positive number, got {self.clock_mhz!r}.")

    def cycles_per_mac(self, w_bits: int, a_bits: int) -> int:
        """Element-cycles of one w x a-bit MAC."""
        return -(-w_bits // self.w_unit) * -(-a_bits // self.a_unit)


@dataclass(frozen=True)
class LayerCycles:
    name: str
    macs: int
    w_bits: int
    a_bits: int
    bops: int
    cycles: int
    ms: float


@dataclass(frozen=True)
class CyclesReport:
    """Per-layer cycles of one sample, with totals."""

    array: MacArray
    layers: tuple[LayerCycles, ...]

    @property
    def cycles(self) -> int:
        return sum(layer.cycles for layer in self.layers)

    @property
    def ms(self) -> float:
        return self.cycles / (self.array.clock_mhz * 1e3)

    def table(self) -> str:
        head = f"{'layer':<32} {'w':>2} {'a':>2} {'MACs':>12} {'cycles':>12} {'ms':>9}"
        lines = [head, "-" * len(head)]
        lines += [
            f"{r.name[:32]:<32} {r.w_bits:>2} {r.a_bits:>2} {r.macs:>12,} {r.cycles:>12,} {r.ms:>9.4f}"
            for r in self.layers
        ]
        a = self.array
        lines.append(
            f"total {self.cycles:,} cycles, {self.ms:.3f} ms on {a.rows}x{a.cols} @ {a.clock_mhz:g} MHz"
        )
        return "\n".join(lines)


def _row(r: LayerCost | Mapping[str, Any]) -> tuple[str, int, int, int]:
    if isinstance(r, LayerCost):
        return r.name, r.macs, r.w_bits, r.a_bits
    try:
        return str(r["name"]), int(r["macs"]), int(r["w_bits"]), int(r["a_bits"])
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(
            f"a layer row needs name, macs, w_bits, a_bits (a sdk.cost.LayerCost); got {r!r}."
        ) from e


def integer_cycles(
    rows: Iterable[LayerCost | Mapping[str, Any]], *, array: MacArray | None = None
) -> CyclesReport:
    """Cycles per layer (batch of one) on ``array`` for BOPs rows (``BopsReport.layers`` or manifest
    ``bops.layers``). A layer float on either side cannot run on the integer array: InputError."""
    arr = array or MacArray()
    out = []
    for r in rows:
        name, macs, w, a = _row(r)
        if FLOAT_BITS in (w, a):
            raise InputError(
                f"layer {name!r} is float ({w}, {a}); the integer MAC array runs 2-8 bit layers only."
            )
        cycles = -(-macs * arr.cycles_per_mac(w, a) // (arr.rows * arr.cols))
        out.append(LayerCycles(name, macs, w, a, macs * w * a, cycles, cycles / (arr.clock_mhz * 1e3)))
    return CyclesReport(arr, tuple(out))
