"""Search constraints: each one is a limit, its expected value under theta (for the barrier) and its exact
value for a config (for the guarantee). The BOPs budget in average bits is one; weight memory
(:class:`WeightBytes`) and cycles on a MAC array (:class:`Cycles`) are more objects of the same shape, and
every guard (barrier, step shortening, repair, knapsack, fill) honours all of them.

Every constraint is separable: a config's cost is the sum over groups of an exact per-(group, candidate)
``table`` entry (BOPs, bytes, cycles), compared with ``cap`` in the same unit. So the expected cost under
theta is linear in the probs (Eq. 10's form) and knapsack/repair can treat all constraints alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from sdk.cost import LayerCost
from sdk.nas.losses import expected_bits
from sdk.nas.space import SearchSpace

__all__ = [
    "Constraint",
    "BopsBudget",
    "WeightBytes",
    "Cycles",
    "all_inside",
    "stored_weight_bits",
    "INSIDE_TOL",
]

#: theta steps keep E <= limit - INSIDE_TOL (in barrier units: bits, or a fraction of the limit), so the
#: barrier stays finite (<= 9.2 * mu).
INSIDE_TOL = 1e-4


class Constraint(Protocol):
    """A budget the search guarantees. ``expected(probs)`` is differentiable in the probs and equals
    ``value`` for one-hot probs; ``inside(choice)`` is the exact test the guarantee rests on. ``table[g][j]``
    is the exact cost of group g at candidate j and ``cap`` the limit in that unit (the config's cost is the
    sum over groups). The barrier of Eq. 12 acts on ``expected / scale`` against ``limit / scale``."""

    @property
    def name(self) -> str: ...

    @property
    def limit(self) -> float: ...

    @property
    def unit(self) -> str: ...

    @property
    def scale(self) -> float: ...

    @property
    def margin(self) -> float:
        """theta steps keep ``expected <= limit - margin`` (the barrier's domain, with room)."""
        ...

    @property
    def table(self) -> tuple[tuple[int, ...], ...]: ...

    @property
    def cap(self) -> float: ...

    def expected(self, probs: Sequence[torch.Tensor]) -> torch.Tensor: ...

    def value(self, choice: Sequence[int]) -> float: ...

    def inside(self, choice: Sequence[int]) -> bool: ...


@dataclass(frozen=True)
class BopsBudget:
    """Average bits (Eq. 4) <= ``limit`` (b_max), counted by the one cost function (``sdk.cost``)."""

    space: SearchSpace
    limit: float
    name: str = "avg_bits"
    margin: float = INSIDE_TOL
    unit: str = "bits"
    scale: float = 1.0
    _coeffs: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        coeffs = self.space.coefficients()
        width = max(len(c) for c in coeffs)
        mat = torch.tensor([c + [0.0] * (width - len(c)) for c in coeffs], dtype=torch.float64)
        object.__setattr__(self, "_coeffs", mat)

    @property
    def table(self) -> tuple[tuple[int, ...], ...]:
        """BOPs of every group at every candidate (Eq. 3)."""
        return tuple(tuple(g.cost(j) for j in range(len(g.candidates))) for g in self.space.groups)

    @property
    def cap(self) -> float:
        """b_max^2 * sum MACs: avg bits <= b_max as BOPs (``BopsReport.within``)."""
        return self.limit * self.limit * self.space.total_macs * (1 + 1e-12)

    def expected(self, probs: Sequence[torch.Tensor]) -> torch.Tensor:
        """E(SN) of Eq. 10 in average bits (the same sum ``Supernet.expected_bits`` computes)."""
        return expected_bits(probs, self._coeffs.to(probs[0].device))

    def value(self, choice: Sequence[int]) -> float:
        return self.space.avg_bits(choice)

    def inside(self, choice: Sequence[int]) -> bool:
        return self.space.report(choice).within(self.limit)


@dataclass(frozen=True)
class _TableBudget:
    """sum_g table[g][choice[g]] <= limit * per_unit, the table in exact integers (bytes, cycles). The
    barrier sees expected / limit against 1 (``scale = limit``): its slope matches the BOPs budget's at
    b_max ~ 3 (both in relative change)."""

    space: SearchSpace
    limit: float
    name: str = ""
    unit: str = ""
    per_unit: float = 1.0
    table: tuple[tuple[int, ...], ...] = field(default=(), repr=False)
    _coeffs: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        width = max(len(row) for row in self.table)
        mat = [[float(v) / self.per_unit for v in row] + [0.0] * (width - len(row)) for row in self.table]
        object.__setattr__(self, "_coeffs", torch.tensor(mat, dtype=torch.float64))

    @property
    def scale(self) -> float:
        return self.limit

    @property
    def margin(self) -> float:
        return INSIDE_TOL * self.limit

    @property
    def cap(self) -> float:
        return self.limit * self.per_unit

    def expected(self, probs: Sequence[torch.Tensor]) -> torch.Tensor:
        coeffs = self._coeffs.to(probs[0].device)
        total = coeffs.new_zeros(())
        for i, p in enumerate(probs):
            total = total + (p.to(coeffs.dtype) * coeffs[i, : p.numel()]).sum()
        return total

    def total(self, choice: Sequence[int]) -> int:
        """The exact cost of ``choice`` in table units (bytes, cycles)."""
        return sum(row[j] for row, j in zip(self.table, choice))

    def value(self, choice: Sequence[int]) -> float:
        return self.total(choice) / self.per_unit

    def inside(self, choice: Sequence[int]) -> bool:
        return self.total(choice) <= self.cap


def stored_weight_bits(target: Any, w_bits: int, a_bits: int) -> int:
    """Bits one weight of a layer searched at (w_bits, a_bits) takes in ``target``'s artifact: the searched
    bits where its lowering packs weights (``pack_weights``: integer/FPGA), else the weight side of the pair
    the engine computes (``Target.deployed_pair``: an 8-bit container on x86, exact widths on hls4ml).
    ``target=None``: the searched bits."""
    if target is None or "pack_weights" in target.lowering:
        return int(w_bits)
    return int(target.deployed_pair(w_bits, a_bits)[0])


def _group_rows(space: SearchSpace) -> list[list[tuple[str, int, int, str]]]:
    by_name = {r[0]: r for r in space.rows}
    return [[by_name[n] for n in g.layers] for g in space.groups]


@dataclass(frozen=True)
class WeightBytes(_TableBudget):
    """Weight memory in KB (1024 bytes): sum over quantizable layers of ceil(params * stored bits / 8), the
    stored bits by :func:`stored_weight_bits` for ``target`` (None: the searched bits). Biases and scales
    (32 bits per output channel) are not counted: they do not depend on the choice."""

    name: str = "weight_kb"
    unit: str = "KB"
    per_unit: float = 1024.0
    target: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        table = []
        for g, rows in zip(self.space.groups, _group_rows(self.space)):
            table.append(
                tuple(
                    sum(-(-p * stored_weight_bits(self.target, w, a) // 8) for _, _, p, _ in rows)
                    for w, a in g.candidates
                )
            )
        object.__setattr__(self, "table", tuple(table))
        super().__post_init__()


@dataclass(frozen=True)
class Cycles(_TableBudget):
    """Cycles of one sample on ``target``'s MAC array (``target.cost``, ``sdk.cost.CostModel``), each layer
    at the pair the target computes it at (``Target.deployed_pair``)."""

    name: str = "cycles"
    unit: str = "cycles"
    target: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        table = []
        for g, rows in zip(self.space.groups, _group_rows(self.space)):
            costs = []
            for w, a in g.candidates:
                dw, da = self.target.deployed_pair(w, a)
                layers = [LayerCost(n, m, p, dw, da, op) for n, m, p, op in rows]
                report = self.target.cost.cycles_report(layers)
                assert report is not None, "Cycles needs a target with a MAC array (checked by the caller)"
                costs.append(report.cycles)
            table.append(tuple(costs))
        object.__setattr__(self, "table", tuple(table))
        super().__post_init__()


def all_inside(constraints: Sequence[Constraint], choice: Sequence[int]) -> bool:
    """Whether ``choice`` satisfies every constraint."""
    return all(c.inside(choice) for c in constraints)
