"""The barrier weight mu over the search (Eq. 12).

Sect. 3.2: mu "should be smaller in the early search stage because there is a large gap between the
estimation BOPs of the initial supernet and the BOPs of the final sampled" model. Early on p_ij is diffuse,
so E(SN) says little about the config Eq. 8 will sample; a strong barrier then would push theta away from
the budget on a poor estimate. As Prob-1 sharpens p_ij, E(SN) approaches the sampled BOPs and mu rises to
its final value. The default ramps mu from 1e-4 to 1e-3 on a half cosine over the architecture steps.

Why so small: the barrier's pull at d bits inside the budget is mu / ((1 + d) ln(1 + d)), and theta settles
where it equals the val CE's gain per bit. On digits that gain is ~0.01 nat/bit, so mu = 0.2 (the previous
end value) held E(SN) ~0.9 bit inside b_max and the searched models left a third of the budget unused; with
mu <= 1e-3 the barrier acts only within ~0.1 bit of b_max. The budget itself never depends on mu: every
theta step is shortened to stay inside (sdk.nas.algorithm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from sdk.errors import InputError

__all__ = ["MuSchedule"]


@dataclass(frozen=True)
class MuSchedule:
    """mu(t) for progress t in [0, 1]: ``start`` -> ``end`` by ``kind`` ("cosine", "linear" or "constant")."""

    start: float = 1e-4
    end: float = 1e-3
    kind: Literal["cosine", "linear", "constant"] = "cosine"

    def __post_init__(self) -> None:
        if not (self.start >= 0 and self.end >= 0 and math.isfinite(self.start) and math.isfinite(self.end)):
            raise InputError(f"mu must be finite and >= 0, got start={self.start}, end={self.end}.")
        if self.kind not in ("cosine", "linear", "constant"):
            raise InputError(f"MuSchedule kind must be 'cosine', 'linear' or 'constant', got {self.kind!r}.")

    @classmethod
    def constant(cls, mu: float) -> MuSchedule:
        return cls(mu, mu, "constant")

    def __call__(self, t: float) -> float:
        t = min(max(t, 0.0), 1.0)
        if self.kind == "constant":
            return self.start
        ramp = t if self.kind == "linear" else 0.5 * (1 - math.cos(math.pi * t))
        return self.start + (self.end - self.start) * ramp
