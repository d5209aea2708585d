"""Search constraints: each one is a limit, its expected value under theta (for the barrier) and its exact
value for a config (for the guarantee). The BOPs budget in average bits is one; a weight-memory or cycle
budget is one more object of the same shape, and every guard (barrier, step shortening, repair, fill) then
honours it without further edits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from sdk.nas.losses import expected_bits
from sdk.nas.space import SearchSpace

__all__ = ["Constraint", "BopsBudget", "all_inside", "INSIDE_TOL"]

#: theta steps keep E(SN) <= b_max - INSIDE_TOL, so the barrier stays finite (<= 9.2 * mu).
INSIDE_TOL = 1e-4


class Constraint(Protocol):
    """A budget the search guarantees. ``expected(probs)`` is differentiable in the probs and equals
    ``value`` for one-hot probs; ``inside(choice)`` is the exact test the guarantee rests on."""

    @property
    def name(self) -> str: ...

    @property
    def limit(self) -> float: ...

    @property
    def margin(self) -> float:
        """theta steps keep ``expected <= limit - margin`` (the barrier's domain, with room)."""
        ...

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
    _coeffs: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        coeffs = self.space.coefficients()
        width = max(len(c) for c in coeffs)
        mat = torch.tensor([c + [0.0] * (width - len(c)) for c in coeffs], dtype=torch.float64)
        object.__setattr__(self, "_coeffs", mat)

    def expected(self, probs: Sequence[torch.Tensor]) -> torch.Tensor:
        """E(SN) of Eq. 10 in average bits (the same sum ``Supernet.expected_bits`` computes)."""
        return expected_bits(probs, self._coeffs.to(probs[0].device))

    def value(self, choice: Sequence[int]) -> float:
        return self.space.avg_bits(choice)

    def inside(self, choice: Sequence[int]) -> bool:
        return self.space.report(choice).within(self.limit)


def all_inside(constraints: Sequence[Constraint], choice: Sequence[int]) -> bool:
    """Whether ``choice`` satisfies every constraint."""
    return all(c.inside(choice) for c in constraints)
