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
from sdk.cost import BopsReport
from sdk.errors import InputError
from sdk.loop import LossFn, default_loss, to_device
from sdk.nas.constraints import BopsBudget
from sdk.nas.sampling import certify
from sdk.nas.space import PAPER_CANDIDATES, SearchSpace

__all__ = ["HeuristicResult", "greedy_config", "sensitivity_config", "knapsack"]


@dataclass(frozen=True)
class HeuristicResult:
    """A baseline's config with its certificate (recounted by ``sdk.bops``) and cost in seconds;
    ``sensitivity`` holds the measured loss increase per group and candidate (sensitivity_config only)."""

    method: str
    config: MixedPrecisionConfig
    certificate: BopsReport
    b_max: float
    seconds: float
    sensitivity: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    @property
    def avg_bits(self) -> float:
        return self.certificate.avg_bits

    @property
    def within(self) -> bool:
        return self.certificate.within(self.b_max)


def _space(
    model: nn.Module, shape: Sequence[int], candidates: Iterable[Any], groups: Any, target: Any
) -> SearchSpace:
    from sdk.nas.api import prepare_space

    if not isinstance(model, nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    return prepare_space(model, tuple(shape), candidates, groups, target)


def greedy_config(
    model: nn.Module,
    b_max: float,
    input_shape: Sequence[int],
    *,
    candidates: Iterable[Any] = PAPER_CANDIDATES,
    groups: Any = "layer",
    target: Any = None,
) -> HeuristicResult:
    """Smallest groups first, each takes the dearest candidate that fits (the others as set so far)."""
    t0 = time.perf_counter()
    space = _space(model, input_shape, candidates, groups, target)
    space.check_feasible(b_max)
    budget = BopsBudget(space, float(b_max))
    choice = space.cheapest_choice()
    for gi in sorted(range(len(space.groups)), key=lambda i: (space.groups[i].macs, i)):
        g = space.groups[gi]
        for j in sorted(range(len(g.candidates)), key=lambda j: (-g.cost(j), -g.candidates[j][0], j)):
            if budget.inside([*choice[:gi], j, *choice[gi + 1 :]]):
                choice[gi] = j
                break
    config = space.config(choice)
    cert = certify(model, config, tuple(input_shape), float(b_max))
    return HeuristicResult("greedy", config, cert, float(b_max), time.perf_counter() - t0)


def sensitivity_config(
    model: nn.Module,
    val_loader: DataLoader,
    b_max: float,
    *,
    candidates: Iterable[Any] = PAPER_CANDIDATES,
    groups: Any = "layer",
    target: Any = None,
    batches: int = 8,
    loss_fn: LossFn | None = None,
    device: str | torch.device = "cpu",
) -> HeuristicResult:
    """Measured per-group loss increase of each candidate, then the exact min-sum knapsack under b_max."""
    from sdk.nas.fill import path_losses
    from sdk.nas.supernet import build_supernet

    t0 = time.perf_counter()
    data = [(x.to(device), to_device(y, device)) for x, y in islice(val_loader, batches)]
    if not data:
        raise InputError("sensitivity_config needs a non-empty val_loader of (x, y) batches.")
    shape = (1, *data[0][0].shape[1:])
    space = _space(model, shape, candidates, groups, target)
    space.check_feasible(b_max)
    sn = build_supernet(model, space).to(device)
    sn.calibrate(data[0][0])
    dearest = [max(range(len(g.candidates)), key=lambda j: (g.cost(j), j)) for g in space.groups]
    pairs = [(gi, j) for gi, g in enumerate(space.groups) for j in range(len(g.candidates))]
    losses = path_losses(sn, dearest, pairs, data, loss_fn if loss_fn is not None else default_loss)
    base = losses[(0, dearest[0])]
    delta = [[losses[(gi, j)] - base for j in range(len(g.candidates))] for gi, g in enumerate(space.groups)]
    choice = knapsack(space, delta, float(b_max))
    config = space.config(choice)
    cert = certify(model, config, shape, float(b_max))
    sens = {g.name: tuple(d) for g, d in zip(space.groups, delta)}
    return HeuristicResult("sensitivity", config, cert, float(b_max), time.perf_counter() - t0, sens)


def knapsack(space: SearchSpace, delta: Sequence[Sequence[float]], b_max: float) -> list[int]:
    """min sum delta_gj x_gj s.t. sum BOPs_gj x_gj <= b_max^2 * MACs, one candidate per group, x binary.
    Costs are scaled to the budget so the solver's tolerances are relative; a solution the exact count
    rejects (rounding at the boundary) is re-solved with the budget shrunk by 1e-6 relative."""
    from scipy.optimize import Bounds as bounds
    from scipy.optimize import LinearConstraint as lin
    from scipy.optimize import milp

    index = [(gi, j) for gi, g in enumerate(space.groups) for j in range(len(g.candidates))]
    c = np.array([delta[gi][j] for gi, j in index])
    limit = b_max**2 * space.total_macs
    cost = np.array([space.groups[gi].cost(j) / limit for gi, j in index])
    one = np.zeros((len(space.groups), len(index)))
    for k, (gi, _) in enumerate(index):
        one[gi, k] = 1.0
    for shrink in (1.0, 1 - 1e-6, 1 - 1e-4):
        res = milp(
            c,
            constraints=[lin(cost[None, :], -np.inf, shrink), lin(one, 1.0, 1.0)],
            integrality=np.ones(len(index)),
            bounds=bounds(0, 1),
        )
        if res.x is None:
            continue
        choice = [0] * len(space.groups)
        for k, (gi, j) in enumerate(index):
            if res.x[k] > 0.5:
                choice[gi] = j
        if BopsBudget(space, b_max).inside(choice):
            return choice
    if not math.isfinite(b_max):
        raise InputError(f"b_max must be finite, got {b_max!r}.")
    return space.cheapest_choice()
