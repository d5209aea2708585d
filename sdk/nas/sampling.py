"""From importance factors to a config that fits the budget: Eq. 8 argmax, greedy repair, certificate.

Repair (only when the argmax config exceeds b_max): repeatedly apply the cheapest-in-importance move, i.e.
lower one group g from its current candidate c to a cheaper candidate j minimising

    (log p_gc - log p_gj) / (BOPs_g(c) - BOPs_g(j))        (importance lost per BOP saved)

until the config is inside. It terminates because the all-cheapest config is inside (checked before the
search). One big move can save far more than the overshoot (measured: 4.02 -> 3.27 bits at b_max = 4), so a
refill pass follows: while some group can move to a candidate it rates more important (higher p) and the
config stays inside, take the move with the largest log-p gain. Both passes are greedy steps on the same
problem, max sum_g log p_g(c_g) s.t. BOPs(c) <= b_max; the refill only raises sum log p, so it terminates.
With more constraints than BOPs (``sdk.nas.constraints``) a move must not raise any constraint's cost and
"BOP saved" becomes the summed fraction of each violated constraint's cap saved; with BOPs alone that orders
the moves exactly as BOPs saved does. The certificate is then recounted from scratch on the user's model
(``sdk.nas.certificate``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from sdk.nas.constraints import BopsBudget, Constraint, all_inside
from sdk.nas.space import SearchSpace

__all__ = ["RepairMove", "argmax_choice", "repair"]


@dataclass(frozen=True)
class RepairMove:
    """One repair step: group ``group`` went from pair ``before`` to ``after`` (a refill step has
    negative ``log_p_lost`` and ``bops_saved``)."""

    group: str
    before: tuple[int, int]
    after: tuple[int, int]
    log_p_lost: float
    bops_saved: int


def argmax_choice(probs: Sequence[torch.Tensor]) -> list[int]:
    """Eq. 8: index of max_j p_ij per group (ties: the first listed)."""
    return [int(torch.argmax(p.detach())) for p in probs]


def repair(
    space: SearchSpace,
    choice: Sequence[int],
    probs: Sequence[Sequence[float]],
    b_max: float,
    constraints: Sequence[Constraint] | None = None,
) -> tuple[list[int], list[RepairMove]]:
    """Greedily lower groups until ``choice`` is inside every constraint (default: ``b_max`` alone);
    returns (choice, moves). When no single move helps (possible only when no candidate is cheapest in
    every constraint), a config inside them all (``sdk.nas.budget.check_feasible``) is taken whole."""
    cons = list(constraints) if constraints is not None else [BopsBudget(space, b_max)]
    choice = list(choice)
    moves: list[RepairMove] = []
    logp = [[math.log(max(float(v), 1e-300)) for v in p] for p in probs]
    while not all_inside(cons, choice):
        best = _best_cut(space, choice, logp, [c for c in cons if not c.inside(choice)], cons)
        if best is None:
            from sdk.nas.budget import check_feasible

            target = check_feasible(space, cons)
            for gi, j in enumerate(target):
                if j != choice[gi]:
                    moves.append(_move(space, gi, choice[gi], j, logp[gi][choice[gi]] - logp[gi][j]))
            choice = list(target)
            break
        gi, j = best
        moves.append(_move(space, gi, choice[gi], j, logp[gi][choice[gi]] - logp[gi][j]))
        choice[gi] = j
    if moves:
        _refill(space, choice, logp, cons, moves)
    return choice, moves


def _move(space: SearchSpace, gi: int, cur: int, j: int, log_p_lost: float) -> RepairMove:
    g = space.groups[gi]
    return RepairMove(g.name, g.candidates[cur], g.candidates[j], log_p_lost, g.cost(cur) - g.cost(j))


def _best_cut(
    space: SearchSpace,
    choice: Sequence[int],
    logp: Sequence[Sequence[float]],
    violated: Sequence[Constraint],
    cons: Sequence[Constraint],
) -> tuple[int, int] | None:
    """The move with the least importance lost per fraction of the violated caps saved (ties: the larger
    saving, then the first group and candidate); it may raise no constraint's cost."""
    best: tuple[float, float, int, int] | None = None  # (ratio, -saved, group, candidate)
    for gi, g in enumerate(space.groups):
        cur = choice[gi]
        for j in range(len(g.candidates)):
            if any(c.table[gi][j] > c.table[gi][cur] for c in cons):
                continue
            saved = sum((c.table[gi][cur] - c.table[gi][j]) / c.cap for c in violated)
            if saved <= 0:
                continue
            key = ((logp[gi][cur] - logp[gi][j]) / saved, -saved, gi, j)
            if best is None or key < best:
                best = key
    return None if best is None else (best[2], best[3])


def _refill(
    space: SearchSpace,
    choice: list[int],
    logp: list[list[float]],
    cons: Sequence[Constraint],
    moves: list[RepairMove],
) -> None:
    """Move groups back towards candidates with higher p while the config stays inside (in place)."""
    while True:
        best: tuple[float, int, int] | None = None  # (-gain, group, candidate)
        for gi, g in enumerate(space.groups):
            cur = choice[gi]
            for j in range(len(g.candidates)):
                gain = logp[gi][j] - logp[gi][cur]
                if gain <= 1e-12 or (best is not None and (-gain, gi, j) >= best):
                    continue
                if all_inside(cons, [*choice[:gi], j, *choice[gi + 1 :]]):
                    best = (-gain, gi, j)
        if best is None:
            return
        neg_gain, gi, j = best
        g = space.groups[gi]
        moves.append(
            RepairMove(
                g.name, g.candidates[choice[gi]], g.candidates[j], neg_gain, g.cost(choice[gi]) - g.cost(j)
            )
        )
        choice[gi] = j
