"""From importance factors to a config that fits the budget: Eq. 8 argmax, greedy repair, certificate.

Repair (only when the argmax config exceeds b_max): repeatedly apply the cheapest-in-importance move, i.e.
lower one group g from its current candidate c to a cheaper candidate j minimising

    (log p_gc - log p_gj) / (BOPs_g(c) - BOPs_g(j))        (importance lost per BOP saved)

until the config is inside. It terminates because the all-cheapest config is inside (checked before the
search). One big move can save far more than the overshoot (measured: 4.02 -> 3.27 bits at b_max = 4), so a
refill pass follows: while some group can move to a candidate it rates more important (higher p) and the
config stays inside, take the move with the largest log-p gain. Both passes are greedy steps on the same
problem, max sum_g log p_g(c_g) s.t. BOPs(c) <= b_max; the refill only raises sum log p, so it terminates.
The certificate is then recomputed from scratch by ``sdk.bops`` on the user's model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sdk.config import MixedPrecisionConfig
from sdk.cost import BopsReport
from sdk.nas.space import SearchSpace

__all__ = ["RepairMove", "argmax_choice", "repair", "certify"]


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
    space: SearchSpace, choice: Sequence[int], probs: Sequence[Sequence[float]], b_max: float
) -> tuple[list[int], list[RepairMove]]:
    """Greedily lower groups until ``space.report(choice).within(b_max)``; returns (choice, moves)."""
    choice = list(choice)
    moves: list[RepairMove] = []
    logp = [[math.log(max(float(v), 1e-300)) for v in p] for p in probs]
    while not space.report(choice).within(b_max):
        best: tuple[float, int, int, int] | None = None  # (ratio, -saved, group, candidate)
        for gi, g in enumerate(space.groups):
            cur = choice[gi]
            for j in range(len(g.candidates)):
                saved = g.cost(cur) - g.cost(j)
                if saved <= 0:
                    continue
                key = ((logp[gi][cur] - logp[gi][j]) / saved, -saved, gi, j)
                if best is None or key < best:
                    best = key
        if best is None:
            raise RuntimeError("internal error: no cheaper candidate left but the config exceeds b_max")
        _, neg_saved, gi, j = best
        g = space.groups[gi]
        moves.append(
            RepairMove(
                g.name,
                g.candidates[choice[gi]],
                g.candidates[j],
                logp[gi][choice[gi]] - logp[gi][j],
                -neg_saved,
            )
        )
        choice[gi] = j
    if moves:
        _refill(space, choice, logp, b_max, moves)
    return choice, moves


def _refill(
    space: SearchSpace, choice: list[int], logp: list[list[float]], b_max: float, moves: list[RepairMove]
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
                if space.report([*choice[:gi], j, *choice[gi + 1 :]]).within(b_max):
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


def certify(model: nn.Module, config: MixedPrecisionConfig, input_shape: Any, b_max: float) -> BopsReport:
    """Recompute the BOPs report with ``sdk.bops`` (the one cost function) and assert it is within b_max."""
    from sdk.counting import bops

    report = bops(model, config, input_shape=input_shape)
    if not report.within(b_max):
        raise RuntimeError(
            f"internal error: certified config averages {report.avg_bits:.6f} bits > b_max={b_max}; "
            "please report this bug."
        )
    return report
