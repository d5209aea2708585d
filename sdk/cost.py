"""The BOPs cost model (Eq. 3-4), torch-free: one function turns per-layer MACs and bits into a report; and
the bit-serial MAC array (:class:`CostModel`) that prices such a report in cycles, shared by the targets and
the integer runtime.

Conventions (stated because papers differ):
- FLOP(L_i) in Eq. 3 is counted as multiply-accumulates (MACs) for a batch of one.
- avg_bits = sqrt(BOPs / sum MACs) (Eq. 4); b_comp = 32*32 / avg_bits^2 = 1024 / avg_bits^2.
- w_comp = 32 / (parameter-weighted mean weight bits), over the quantizable layers' weights (biases and BN
  are excluded: they stay float/int32 and are tiny). Uniform (3,3) gives 113.78x / 10.67x and (4,4) 64x / 8x,
  Table 1's uniform rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sdk.config import FLOAT_BITS
from sdk.errors import InputError

__all__ = [
    "BopsReport",
    "CostModel",
    "CyclesReport",
    "LayerCost",
    "LayerCycles",
    "avg_bits_of",
    "layer_bops",
    "report_from_layers",
]


@dataclass(frozen=True)
class LayerCost:
    """One quantizable layer: MACs per sample, weight parameter count, and its bit pair."""

    name: str
    macs: int
    params: int
    w_bits: int
    a_bits: int
    op: str = "conv"  # "conv", "dwconv" or "linear"

    @property
    def bops(self) -> int:
        return self.macs * self.w_bits * self.a_bits


@dataclass(frozen=True)
class BopsReport:
    """Eq. 3-4 summary plus per-layer rows. Recomputed from rows, never trusted from elsewhere."""

    layers: tuple[LayerCost, ...]

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def bops(self) -> int:
        return sum(layer.bops for layer in self.layers)

    @property
    def avg_bits(self) -> float:
        return avg_bits_of(self.bops, self.macs)

    @property
    def b_comp(self) -> float:
        return 1024.0 / self.avg_bits**2

    @property
    def mean_w_bits(self) -> float:
        return sum(layer.params * layer.w_bits for layer in self.layers) / max(self.params, 1)

    @property
    def w_comp(self) -> float:
        return 32.0 / self.mean_w_bits

    def within(self, b_max: float) -> bool:
        """True when avg_bits <= b_max (compared as BOPs <= b_max^2 * MACs, no float sqrt)."""
        return self.bops <= b_max * b_max * self.macs * (1 + 1e-12)

    def to_dict(self) -> dict[str, Any]:
        return {
            "macs": self.macs,
            "bops": self.bops,
            "avg_bits": self.avg_bits,
            "b_comp": self.b_comp,
            "w_comp": self.w_comp,
            "layers": [asdict(layer) for layer in self.layers],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BopsReport:
        return cls(tuple(LayerCost(**row) for row in data["layers"]))

    def table(self) -> str:
        """A printable per-layer table with totals."""
        cols = ("MACs", 12), ("params", 10), ("w", 3), ("a", 3), ("BOPs", 15), ("%BOPs", 6)
        head = f"{'layer':<32} {'op':<6} " + " ".join(f"{c:>{n}}" for c, n in cols)
        lines = [head, "-" * len(head)]
        total = max(self.bops, 1)
        for r in self.layers:
            lines.append(
                f"{r.name[:32]:<32} {r.op:<6} {r.macs:>12,} {r.params:>10,} {r.w_bits:>3} {r.a_bits:>3} "
                f"{r.bops:>15,} {100 * r.bops / total:>5.1f}%"
            )
        lines.append("-" * len(head))
        lines.append(
            f"total MACs {self.macs:,}  BOPs {self.bops:,}  avg bits {self.avg_bits:.3f}  "
            f"B-Comp {self.b_comp:.2f}x  W-Comp {self.w_comp:.2f}x"
        )
        return "\n".join(lines)


def avg_bits_of(bops: float, macs: float) -> float:
    """Eq. 4: sqrt(BOPs / sum MACs)."""
    return math.sqrt(bops / macs) if macs else math.nan


def layer_bops(macs: int, w_bits: int, a_bits: int) -> int:
    """Eq. 3 term for one layer."""
    return macs * w_bits * a_bits


def report_from_layers(
    shapes: Iterable[tuple[str, int, int, str]], bits: Mapping[str, tuple[int, int]]
) -> BopsReport:
    """Build a report from (name, macs, params, op) rows and a name -> (w, a) mapping."""
    rows = []
    for name, macs, params, op in shapes:
        w, a = bits[name]
        rows.append(LayerCost(name, int(macs), int(params), int(w), int(a), op))
    return BopsReport(tuple(rows))


# -- cycles on a bit-serial MAC array ---------------------------------------------------------------------
@dataclass(frozen=True)
class CostModel:
    """How a target prices a layer table: BOPs always; cycles and time when it has a MAC array.

    The array has ``mac_rows x mac_cols`` bit-serial elements at ``clock_mhz``, each retiring a ``w_unit`` x
    ``a_unit``-bit slice of a MAC per cycle (Stripes/Loom/BISMO-style), so a w x a-bit MAC costs
    ``ceil(w / w_unit) * ceil(a / a_unit)`` element-cycles and a layer of M MACs
    ``ceil(M * that / (mac_rows * mac_cols))`` cycles: ideal utilization, no memory stalls, batch of one. With
    1-bit units cycles are proportional to BOPs (Eq. 3), the quantity the search minimizes; with 8-bit units
    every pair up to 8 x 8 costs one cycle per MAC (a plain int8 array). Layers that are float on either side
    cannot run on the array, so :meth:`cycles` is None for them.

    Attributes:
        mac_rows, mac_cols, clock_mhz: the array; all None for targets priced in BOPs only.
        w_unit, a_unit: bits of weight and activation one element handles per cycle (1..8).
    """

    mac_rows: int | None = None
    mac_cols: int | None = None
    clock_mhz: float | None = None
    w_unit: int = 1
    a_unit: int = 1

    def __post_init__(self) -> None:
        array = (self.mac_rows, self.mac_cols, self.clock_mhz)
        if any(v is None for v in array) and any(v is not None for v in array):
            raise InputError("CostModel: mac_rows, mac_cols and clock_mhz go together; give all or none.")
        for name in ("mac_rows", "mac_cols", "w_unit", "a_unit"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise InputError(f"CostModel.{name} must be a positive int, got {v!r}.")
        if self.clock_mhz is not None and not (
            isinstance(self.clock_mhz, (int, float)) and math.isfinite(self.clock_mhz) and self.clock_mhz > 0
        ):
            raise InputError(f"CostModel.clock_mhz must be a positive number, got {self.clock_mhz!r}.")
        if self.w_unit > 8 or self.a_unit > 8:
            raise InputError(f"CostModel: w_unit, a_unit must be 1..8, got {self.w_unit}, {self.a_unit}.")

    @property
    def has_cycles(self) -> bool:
        return self.mac_rows is not None

    def cycles_per_mac(self, w_bits: int, a_bits: int) -> int:
        """Element-cycles of one w x a-bit MAC."""
        return -(-w_bits // self.w_unit) * -(-a_bits // self.a_unit)

    def cycles_report(self, report: BopsReport | Iterable[LayerCost]) -> CyclesReport | None:
        """Per-layer cycles of one sample; None without an array or when some layer is float."""
        layers = report.layers if isinstance(report, BopsReport) else tuple(report)
        if self.mac_rows is None or self.mac_cols is None or self.clock_mhz is None:
            return None
        if any(FLOAT_BITS in (r.w_bits, r.a_bits) for r in layers):
            return None
        elements, khz = self.mac_rows * self.mac_cols, self.clock_mhz * 1e3
        rows = []
        for r in layers:
            cycles = -(-r.macs * self.cycles_per_mac(r.w_bits, r.a_bits) // elements)
            rows.append(LayerCycles(r.name, r.macs, r.w_bits, r.a_bits, r.bops, cycles, cycles / khz))
        return CyclesReport(self, tuple(rows))

    def cycles(self, report: BopsReport) -> int | None:
        """Total cycles for one sample; None without an array or when some layer is float."""
        rep = self.cycles_report(report)
        return None if rep is None else rep.cycles

    def latency_ms(self, report: BopsReport) -> float | None:
        """Estimated compute time of one sample from :meth:`cycles` and the clock (no memory stalls)."""
        rep = self.cycles_report(report)
        return None if rep is None else rep.ms

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CostModel:
        return cls(**dict(data))


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
    """Per-layer cycles of one sample on ``array``, with totals."""

    array: CostModel
    layers: tuple[LayerCycles, ...]

    @property
    def cycles(self) -> int:
        return sum(layer.cycles for layer in self.layers)

    @property
    def ms(self) -> float:
        return self.cycles / (float(self.array.clock_mhz or math.nan) * 1e3)

    def table(self) -> str:
        head = f"{'layer':<32} {'w':>2} {'a':>2} {'MACs':>12} {'cycles':>12} {'ms':>9}"
        lines = [head, "-" * len(head)]
        lines += [
            f"{r.name[:32]:<32} {r.w_bits:>2} {r.a_bits:>2} {r.macs:>12,} {r.cycles:>12,} {r.ms:>9.4f}"
            for r in self.layers
        ]
        a = self.array
        where = f"{a.mac_rows}x{a.mac_cols} @ {a.clock_mhz:g} MHz"
        lines.append(f"total {self.cycles:,} cycles, {self.ms:.3f} ms on {where}")
        return "\n".join(lines)
