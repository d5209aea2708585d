"""Search-free baselines a user could run instead of BP-NAS, under the same budget guarantee:

- ``greedy_config``: no data. Every group starts at its cheapest candidate; then the groups, smallest MACs
  first, each take the dearest candidate that still fits the budget (a classifier head and a stem, which cost
  almost nothing, end at the top pair).
- ``sensitivity_config`` (HAWQ spirit): measure, on the float model's calibrated quantized supernet (no
  training), the validation-loss increase of each candidate in each group alone (every other group at its
  dearest candidate), then choose one candidate per group minimising the summed increase under the BOPs
  budget, an exact knapsack solved by ``scipy.optimize.milp``. HAWQ-V3 uses Hessian traces times the
  quantization perturbation as the per-layer score and the same kind of ILP; here the loss increase is
  measured directly, which needs forward passes only.
Both return a ``HeuristicResult`` with the config, its ``sdk.bops`` certificate and the wall-clock cost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from sdk.config import MixedPrecisionConfig
from sdk.errors import InputError
from sdk.loop import LossFn, default_loss, to_device
from sdk.nas.certificate import Certificate, Certified, certify
from sdk.nas.constraints import BopsBudget, Constraint, all_inside
from sdk.nas.space import PAPER_CANDIDATES, SearchSpace

__all__ = [
    "HeuristicResult",
    "greedy_config",
    "sensitivity_config",
    "knapsack",
    "sensitivity_choice",
    "dearest_choice",
    "every_pair",
]


@dataclass(frozen=True)
class HeuristicResult(Certified):
    """A baseline's config with its certificate (every constraint recounted on the model) and cost in
    seconds; ``sensitivity`` holds the measured loss increase per group and candidate (sensitivity_config)."""

    method: str
    config: MixedPrecisionConfig
    certificate: Certificate
    b_max: float
    seconds: float
    sensitivity: Mapping[str, tuple[float, ...]] = field(default_factory=dict)


def _space(
    model: nn.Module,
    shape: Sequence[int],
    candidates: Iterable[Any],
    groups: Any,
    target: Any,
    b_max: float,
    budget: Mapping[str, float] | None,
) -> tuple[SearchSpace, list[Constraint], list[int]]:
    """The space, its constraints (BOPs plus ``budget``, priced by ``target``) and a config inside them."""
    from sdk.nas.api import prepare_space
    from sdk.nas.budget import build_constraints, check_budget, check_feasible

    if not isinstance(model, nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    limits = check_budget(budget)
    space = prepare_space(model, tuple(shape), candidates, groups, target)
    cons = build_constraints(space, float(b_max), limits, target)
    return space, cons, check_feasible(space, cons)


def greedy_config(
    model: nn.Module,
    b_max: float,
    input_shape: Sequence[int],
    *,
    candidates: Iterable[Any] = PAPER_CANDIDATES,
    groups: Any = "layer",
    target: Any = None,
    budget: Mapping[str, float] | None = None,
) -> HeuristicResult:
    """Smallest groups first, each takes the dearest candidate that fits (the others as set so far).
    ``budget``/``target`` add weight-memory and cycle limits as in ``sdk.search``."""
    t0 = time.perf_counter()
    space, cons, choice = _space(model, input_shape, candidates, groups, target, b_max, budget)
    for gi in sorted(range(len(space.groups)), key=lambda i: (space.groups[i].macs, i)):
        g = space.groups[gi]
        for j in sorted(range(len(g.candidates)), key=lambda j: (-g.cost(j), -g.candidates[j][0], j)):
            if all_inside(cons, [*choice[:gi], j, *choice[gi + 1 :]]):
                choice[gi] = j
                break
    config = space.config(choice)
    cert = certify(model, config, tuple(input_shape), float(b_max), budget, target)
    return HeuristicResult("greedy", config, cert, float(b_max), time.perf_counter() - t0)


def sensitivity_config(
    model: nn.Module,
    val_loader: DataLoader,
    b_max: float,
    *,
    candidates: Iterable[Any] = PAPER_CANDIDATES,
    groups: Any = "layer",
    target: Any = None,
    budget: Mapping[str, float] | None = None,
    batches: int = 8,
    loss_fn: LossFn | None = None,
    device: str | torch.device = "cpu",
) -> HeuristicResult:
    """Measured per-group loss increase of each candidate, then the exact min-sum knapsack under b_max (and
    ``budget``, priced by ``target``, as in ``sdk.search``)."""
    from sdk.nas.fill import path_losses
    from sdk.nas.supernet import build_supernet

    t0 = time.perf_counter()
    data = [(x.to(device), to_device(y, device)) for x, y in islice(val_loader, batches)]
    if not data:
        raise InputError("sensitivity_config needs a non-empty val_loader of (x, y) batches.")
    shape = (1, *data[0][0].shape[1:])
    space, cons, floor = _space(model, shape, candidates, groups, target, b_max, budget)
    sn = build_supernet(model, space).to(device)
    sn.calibrate(data[0][0])
    losses = path_losses(sn, dearest_choice(space), every_pair(space), data, loss_fn or default_loss)
    best, delta = sensitivity_choice(space, losses, cons)
    choice = best or floor
    config = space.config(choice)
    cert = certify(model, config, shape, float(b_max), budget, target)
    sens = {g.name: tuple(d) for g, d in zip(space.groups, delta)}
    return HeuristicResult("sensitivity", config, cert, float(b_max), time.perf_counter() - t0, sens)


def dearest_choice(space: SearchSpace) -> list[int]:
    """Every group at its dearest candidate: the path each group's sensitivity is measured around."""
    return [max(range(len(g.candidates)), key=lambda j: (g.cost(j), j)) for g in space.groups]


def every_pair(space: SearchSpace) -> list[tuple[int, int]]:
    """Every (group, candidate) of ``space``: the switches the sensitivity measurement runs."""
    return [(gi, j) for gi, g in enumerate(space.groups) for j in range(len(g.candidates))]


def sensitivity_choice(
    space: SearchSpace, losses: Mapping[tuple[int, int], float], constraints: Sequence[Constraint]
) -> tuple[list[int] | None, list[list[float]]]:
    """The measured-sensitivity knapsack: from ``losses[(gi, j)]`` (the loss with group gi at j, every other
    group at its dearest, :func:`dearest_choice`), the loss increase of each candidate and the config that
    minimises their sum inside ``constraints`` (None when the solver finds none)."""
    base = losses[(0, dearest_choice(space)[0])]
    delta = [[losses[(gi, j)] - base for j in range(len(g.candidates))] for gi, g in enumerate(space.groups)]
    return knapsack(space, delta, constraints), delta


def knapsack(
    space: SearchSpace, delta: Sequence[Sequence[float]], budget: float | Sequence[Constraint]
) -> list[int] | None:
    """min sum delta_gj x_gj s.t. every constraint's sum table_gj x_gj <= cap, one candidate per group, x
    binary (``budget``: b_max alone, or the constraints). Costs are scaled to each cap so the solver's
    tolerances are relative; a solution the exact count rejects (rounding at the boundary) is re-solved with
    the caps shrunk by 1e-6 relative. None when no solution is found."""
    from scipy.optimize import Bounds as bounds
    from scipy.optimize import LinearConstraint as lin
    from scipy.optimize import milp

    if isinstance(budget, (int, float)):
        if not math.isfinite(budget):
            raise InputError(f"b_max must be finite, got {budget!r}.")
        budget = [BopsBudget(space, float(budget))]
    cons = list(budget)
    index = [(gi, j) for gi, g in enumerate(space.groups) for j in range(len(g.candidates))]
    c = np.array([delta[gi][j] for gi, j in index])
    cost = np.array([[k.table[gi][j] / k.cap for gi, j in index] for k in cons])
    one = np.zeros((len(space.groups), len(index)))
    for k, (gi, _) in enumerate(index):
        one[gi, k] = 1.0
    for shrink in (1.0, 1 - 1e-6, 1 - 1e-4):
        res = milp(
            c,
            constraints=[lin(cost, -np.inf, shrink), lin(one, 1.0, 1.0)],
            integrality=np.ones(len(index)),
            bounds=bounds(0, 1),
        )
        if res.x is None:
            continue
        choice = [0] * len(space.groups)
        for k, (gi, j) in enumerate(index):
            if res.x[k] > 0.5:
                choice[gi] = j
        if all_inside(cons, choice):
            return choice
    return None
