"""The user's ``budget={...}`` and ``target=`` as constraint objects: validate the keys and limits, price
bytes and cycles by the target, and refuse a budget no config of the candidates meets, naming the binding
constraint, its limit and the least value the candidates reach.

Keys: ``weight_kb`` (weight memory, :class:`~sdk.nas.constraints.WeightBytes`) and ``cycles`` (one sample on
the target's MAC array, :class:`~sdk.nas.constraints.Cycles`). Without a target, weight bytes count the
searched bits and cycles are refused (no MAC array to count them on).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sdk._registry import did_you_mean
from sdk.errors import BudgetInfeasible, InputError
from sdk.nas.constraints import BopsBudget, Constraint, Cycles, WeightBytes, all_inside
from sdk.nas.space import SearchSpace

__all__ = ["BUDGET_KEYS", "check_budget", "pricing_target", "build_constraints", "check_feasible", "floor"]

#: budget key -> what it limits (for messages and ``--help``)
BUDGET_KEYS = {
    "weight_kb": "weight memory in KB (1024 bytes) at the bits the target stores",
    "cycles": "cycles of one sample on the target's MAC array",
}


def check_budget(budget: Mapping[str, Any] | None) -> dict[str, float]:
    """``budget`` as {key: positive finite limit}; unknown keys and bad limits raise InputError."""
    if budget is None:
        return {}
    if not isinstance(budget, Mapping):
        raise InputError(f"budget must be a dict like {{'weight_kb': 64, 'cycles': 2e6}}, got {budget!r}.")
    out: dict[str, float] = {}
    for key, limit in budget.items():
        if key not in BUDGET_KEYS:
            hint = did_you_mean(key, BUDGET_KEYS, n=2)
            raise InputError(f"unknown budget key {key!r}.{hint} Known: {', '.join(BUDGET_KEYS)}.")
        ok = isinstance(limit, (int, float)) and not isinstance(limit, bool)
        if not (ok and math.isfinite(limit) and limit > 0):
            raise InputError(
                f"budget[{key!r}] must be a positive finite number ({BUDGET_KEYS[key]}), got {limit!r}."
            )
        out[key] = float(limit)
    return out


def pricing_target(target: Any) -> Any:
    """The ``targets.Target`` that prices bytes and cycles: a name (aliases followed) or a Target; None for
    ``target=None`` or an explicit list of allowed pairs."""
    if target is None:
        return None
    import targets

    if isinstance(target, targets.Target):
        return target
    if isinstance(target, str):
        return targets.resolve(target)
    return None


def _mac_targets() -> list[str]:
    import targets

    return [n for n in targets.names() if targets.get(n).cost.has_cycles]


def build_constraints(
    space: SearchSpace, b_max: float, budget: Mapping[str, float], target: Any
) -> list[Constraint]:
    """The BOPs budget plus one constraint per budget key, priced by ``pricing_target(target)``."""
    priced = pricing_target(target) if budget else None
    out: list[Constraint] = [BopsBudget(space, float(b_max))]
    if "weight_kb" in budget:
        out.append(WeightBytes(space, budget["weight_kb"], target=priced))
    if "cycles" in budget:
        if priced is None or not priced.cost.has_cycles:
            which = "no target was given" if priced is None else f"target {priced.name!r} has none"
            raise InputError(
                f"budget['cycles'] counts cycles on a MAC array, but {which}; pass target= one of "
                f"{', '.join(map(repr, _mac_targets()))} (or a targets.Target whose cost model has an array)."
            )
        out.append(Cycles(space, budget["cycles"], target=priced))
    return out


def _cheapest(c: Constraint) -> list[int]:
    return [min(range(len(row)), key=lambda j: (row[j], j)) for row in c.table]


def _fmt(c: Constraint, v: float) -> str:
    return f"{v:.4f} {c.unit}" if c.unit == "bits" else f"{v:,.3f} {c.unit}".replace(".000 ", " ")


def check_feasible(space: SearchSpace, constraints: Sequence[Constraint]) -> list[int]:
    """A choice inside every constraint (each constraint's own cheapest config first, then an exact search);
    raises BudgetInfeasible naming the constraint that cannot be met, its limit and the least value."""
    for c in constraints:
        if isinstance(c, BopsBudget):
            space.check_feasible(c.limit)  # its own message: the candidates, cheaper pairs to add
            continue
        low = _cheapest(c)
        if not c.inside(low):
            raise BudgetInfeasible(
                f"budget {c.name}={c.limit:g} cannot be met: the cheapest candidate in every layer already "
                f"takes {_fmt(c, c.value(low))} (the minimum achievable with these candidates and this "
                f"target). Raise {c.name} to >= {math.ceil(c.value(low) * 1000) / 1000:g}, or add "
                "cheaper candidates."
            )
    for start in [*map(_cheapest, constraints), space.cheapest_choice()]:
        if all_inside(constraints, start):
            return start
    from sdk.nas.heuristics import knapsack

    zero = [[0.0] * len(g.candidates) for g in space.groups]
    choice = knapsack(space, zero, constraints)
    if choice is None:
        names = ", ".join(f"{c.name}={c.limit:g}" for c in constraints)
        raise BudgetInfeasible(
            f"no config of the candidates meets {names} together, though each alone can be met; "
            "loosen one of them."
        )
    return choice


def floor(constraints: Sequence[Constraint]) -> dict[str, float]:
    """Each constraint's least value over the configs (its own cheapest config), by name."""
    return {c.name: c.value(_cheapest(c)) for c in constraints}
