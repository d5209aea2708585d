"""The BOPs cost model (Eq. 3-4), torch-free: one function turns per-layer MACs and bits into a report.

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

__all__ = ["LayerCost", "BopsReport", "report_from_layers", "layer_bops", "avg_bits_of"]


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
