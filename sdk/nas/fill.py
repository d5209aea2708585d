"""Spend what the budget leaves: raise groups to dearer candidates until no upgrade fits (maximality).

An *upgrade* of a group is a dearer candidate with at least as many weight and activation bits (it dominates
the current pair; more bits are assumed no worse). The returned config is *maximal*: no group has an
upgrade that keeps every constraint satisfied. Which upgrades are taken first is decided by *measured
sensitivity* on the trained supernet, not by theta: for each group g and upgrade j the validation loss of the
searched config with only g switched to j, on a few fixed validation batches; moves are taken greedily by
loss decrease per extra BOP (largest first; measured non-improvements last, cheapest first). Ties in theta
therefore never decide whether budget is spent, only the measured losses decide the order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from sdk.nas.constraints import Constraint, all_inside
from sdk.nas.space import SearchSpace
from sdk.nas.supernet import Supernet

__all__ = ["FillMove", "upgrades", "affordable_upgrades", "fill", "path_losses", "FILL_BATCHES"]

#: validation batches the sensitivities are measured on (fixed: the first ones the loader yields).
FILL_BATCHES = 4


@dataclass(frozen=True)
class FillMove:
    """One fill step: ``group`` went from ``before`` to ``after`` for ``bops_added`` BOPs; ``loss_drop`` is
    the measured validation-loss decrease of that switch alone (may be <= 0: taken because it fit)."""

    group: str
    before: tuple[int, int]
    after: tuple[int, int]
    loss_drop: float
    bops_added: int


def upgrades(space: SearchSpace, gi: int, cur: int) -> list[int]:
    """Candidates of group ``gi`` that dominate candidate ``cur`` (w, a >= and dearer)."""
    g = space.groups[gi]
    w0, a0 = g.candidates[cur]
    return [j for j, (w, a) in enumerate(g.candidates) if w >= w0 and a >= a0 and g.cost(j) > g.cost(cur)]


def affordable_upgrades(
    space: SearchSpace, choice: Sequence[int], constraints: Sequence[Constraint]
) -> list[tuple[int, int]]:
    """Every (group, candidate) upgrade that keeps ``choice`` inside all constraints (empty: maximal)."""
    out = []
    for gi in range(len(space.groups)):
        for j in upgrades(space, gi, choice[gi]):
            if all_inside(constraints, [*choice[:gi], j, *choice[gi + 1 :]]):
                out.append((gi, j))
    return out


def fill(
    space: SearchSpace,
    choice: Sequence[int],
    constraints: Sequence[Constraint],
    loss: Callable[[int, int], float] | None = None,
) -> tuple[list[int], list[FillMove]]:
    """Greedy fill to a maximal config; ``loss(gi, j)`` is the measured loss with group gi at j (None: no
    measurement, order by extra BOPs, cheapest first). Returns (choice, moves)."""
    choice = list(choice)
    moves: list[FillMove] = []
    while True:
        options = affordable_upgrades(space, choice, constraints)
        if not options:
            return choice, moves

        def key(o: tuple[int, int]) -> tuple[int, float, int, int]:
            gi, j = o
            g = space.groups[gi]
            added = g.cost(j) - g.cost(choice[gi])
            drop = loss(gi, choice[gi]) - loss(gi, j) if loss is not None else 0.0
            return (0, -drop / added, gi, j) if drop > 0 else (1, float(added), gi, j)

        gi, j = min(options, key=key)
        g = space.groups[gi]
        drop = loss(gi, choice[gi]) - loss(gi, j) if loss is not None else 0.0
        moves.append(
            FillMove(g.name, g.candidates[choice[gi]], g.candidates[j], drop, g.cost(j) - g.cost(choice[gi]))
        )
        choice[gi] = j


@torch.no_grad()
def path_losses(
    sn: Supernet,
    choice: Sequence[int],
    pairs: Iterable[tuple[int, int]],
    batches: Sequence[tuple[torch.Tensor, Any]],
    loss_fn: Callable[[Any, Any], torch.Tensor],
) -> dict[tuple[int, int], float]:
    """Mean loss on ``batches`` of the supernet's one-hot path ``choice`` with group gi switched to j, for
    each (gi, j) in ``pairs`` plus the unswitched path (key (gi, choice[gi]) for every gi). Eval mode; the
    supernet's mode and paths are restored."""
    mode, paths, was = sn.mode, sn.paths, sn.training
    sn.eval()

    def run(path: Sequence[int]) -> float:
        sn.set_path(path)
        total = sum(float(loss_fn(sn.net(x), y)) for x, y in batches)
        return total / max(len(batches), 1)

    try:
        base = run(choice)
        out = {(gi, c): base for gi, c in enumerate(choice)}
        for gi, j in pairs:
            if (gi, j) not in out:
                out[(gi, j)] = run([*choice[:gi], j, *choice[gi + 1 :]])
    finally:
        sn.train(was)
        sn.set_mode(mode, paths)
    return out
