"""``sdk.search``: BP-NAS end to end (space -> feasibility -> supernet -> Algorithm 1 -> Eq. 8 -> repair ->
certificate). Also the engine of the DNAS baseline, which shares everything but the objective."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from sdk.config import MixedPrecisionConfig
from sdk.device import check_device
from sdk.errors import InputError
from sdk.loop import LossFn, default_loss, to_device
from sdk.nas import checkpoint as ckpt
from sdk.nas import distributed as ddp
from sdk.nas.algorithm import INSIDE_TOL, SearchSettings, run_supernet, snapshot_record
from sdk.nas.budget import build_constraints, check_budget, check_feasible, pricing_target
from sdk.nas.budget import floor as budget_floor
from sdk.nas.certificate import certify, recount
from sdk.nas.constraints import Constraint, all_inside
from sdk.nas.fill import FILL_BATCHES, FillMove, affordable_upgrades, fill, path_losses
from sdk.nas.heuristics import dearest_choice, knapsack, sensitivity_choice
from sdk.nas.history import SearchHistory
from sdk.nas.mixed import Mode
from sdk.nas.result import SearchResult
from sdk.nas.sampling import argmax_choice, repair
from sdk.nas.schedule import MuSchedule
from sdk.nas.space import (
    PAPER_CANDIDATES,
    SearchSpace,
    build_space,
    find_groups,
    normalize_candidates,
    restrict_to_target,
)
from sdk.nas.supernet import (
    Supernet,
    build_supernet,
    init_theta_inside,
    init_theta_lead,
    init_theta_within,
    within_targets,
)
from sdk.quant.convert import is_quantized, set_unsigned_act_bits, target_unsigned_act_bits
from sdk.quant.layers import quantizable_layer_names

__all__ = ["search", "run_search", "prepare_space", "peek_batch", "check_search_budget", "BUDGET_KEYWORDS"]

#: the keywords of ``sdk.search`` that :func:`check_search_budget` takes
BUDGET_KEYWORDS = ("b_max", "budget", "target", "candidates", "groups")


def search(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    b_max: float = 3.0,
    candidates: Iterable[Any] = PAPER_CANDIDATES,
    epochs: int = 20,
    groups: Any = "layer",
    target: Any = None,
    seed: int = 0,
    checkpoint_dir: Any = None,
    progress: bool = True,
    *,
    mode: Mode = "full",
    mu: MuSchedule | float | None = None,
    prob1_weight: float = 0.2,
    prob1_ramp: float = 0.3,
    w_lr: float = 0.05,
    theta_lr: float = 0.05,
    warmup_epochs: int | None = None,
    weight_paths: str = "uniform",
    init_margin: float | None = None,
    reshape_k: float | None = 2.0,
    steps_per_epoch: int | None = None,
    input_shape: Sequence[int] | None = None,
    device: str | torch.device = "cpu",
    loss_fn: LossFn | None = None,
    fill: bool = True,
    finish: str = "fill",
    budget: Mapping[str, float] | None = None,
    start: str = "sensitivity",
) -> SearchResult:
    """Search per-layer (w, a) bits for ``model`` under avg bits <= ``b_max`` (BP-NAS, Algorithm 1).

    ``train_loader`` trains the supernet weights and ``val_loader`` the importance factors (the paper's
    60/40 split of the training set, ``DataSplits.search_split()``). ``model`` should be the float model
    pre-trained with distribution reshaping; it is not modified. ``mode="sampled"`` trains one drawn path
    per step (ProxylessNAS gates) instead of the exact mixture. ``mu`` is a MuSchedule or a constant.
    ``theta_lr`` is Adam's step for the importance factors (0.05: at 5e-3 a short search barely moved
    them; docs/search.md).
    The first ``warmup_epochs`` (default ``epochs // 4``) train only the weights, on uniformly drawn paths;
    theta starts tied among the affordable candidates (``init_theta_inside``). ``weight_paths`` chooses
    what the weight steps train after warm-up: ``"uniform"`` (default, one uniformly drawn candidate per group
    and step, SPOS-style), ``"sampled"`` (one path drawn from p) or ``"mixture"`` (the p-weighted supernet).
    The result's ``config`` always satisfies ``sdk.bops(model, config).avg_bits <= b_max``; raises
    ``sdk.BudgetInfeasible`` when no config of the candidates can. Seeds torch, numpy and ``random`` with
    ``seed``; with ``checkpoint_dir`` a killed search resumes from its last finished epoch to the same result.
    ``loss_fn(model_output, targets)`` replaces cross-entropy in both the weight and the theta steps.
    With ``fill`` (default) the argmax config is then raised until no group's upgrade fits the budget, in
    the order of measured val-loss drop per BOP (``result.fill_moves``; ``sdk.nas.fill``).
    ``finish="knapsack"`` first re-chooses every group by an exact knapsack over the measured val loss of each
    single-group switch on the trained supernet (``sdk.nas.heuristics.knapsack``), then fills.
    ``budget={"weight_kb": KB, "cycles": N}`` adds limits guaranteed like b_max, each with its own barrier,
    priced by ``target`` (``sdk.nas.budget``; weight bytes at the searched bits without one);
    ``result.certificate.checks`` recounts every limit on the model.
    ``start="sensitivity"`` (default; HAWQ-initialised BP-NAS) first measures each candidate's val-loss
    increase on the untrained supernet and solves the knapsack, as ``sdk.nas.sensitivity_config`` does, and
    makes that config every group's lead at the start (inside every barrier; ``result.start_config``, its
    cost in ``result.start_seconds``); ``"hinge"`` starts from the cost-only hinge (the default until
    session 6; docs/search.md).
    """
    mu_s = (
        mu if isinstance(mu, MuSchedule) else (MuSchedule() if mu is None else MuSchedule.constant(float(mu)))
    )
    warmup = epochs // 4 if warmup_epochs is None else warmup_epochs
    settings = SearchSettings(
        b_max=float(b_max), epochs=epochs, seed=seed, mode=mode, mu=mu_s, prob1_weight=prob1_weight,
        prob1_ramp=prob1_ramp, w_lr=w_lr, theta_lr=theta_lr, warmup_epochs=warmup, reshape_k=reshape_k,
        steps_per_epoch=steps_per_epoch, fill=fill,
        weight_paths=weight_paths, finish=finish, start=start,  # type: ignore[arg-type]
    )  # fmt: skip
    return run_search(
        model, train_loader, val_loader, settings, candidates=candidates, groups=groups, target=target,
        checkpoint_dir=checkpoint_dir, progress=progress, input_shape=input_shape, device=device,
        init_margin=init_margin, loss_fn=loss_fn, budget=budget,
    )  # fmt: skip


def peek_batch(loader: DataLoader) -> tuple[torch.Tensor, torch.Tensor]:
    """The loader's first batch, leaving every RNG it draws from (and the global ones) as they were."""
    gens = ckpt.loader_generators([loader])
    state = ckpt.rng_state(gens)
    try:
        batch = next(iter(loader))
    except StopIteration:
        raise InputError("the training loader is empty; pass a loader that yields (x, y) batches.") from None
    finally:
        ckpt.set_rng_state(state, gens)
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2 and isinstance(batch[0], torch.Tensor)):
        raise InputError("search loaders must yield (x, y) tensor batches, as sdk.data builds.")
    return batch[0], batch[1]


def prepare_space(
    model: nn.Module, input_shape: Sequence[int], candidates: Iterable[Any], groups: Any, target: Any
) -> SearchSpace:
    """Candidates (restricted to ``target``), groups and per-layer MACs from ``sdk.bops.layer_shapes``."""
    from sdk.counting import layer_shapes

    cands = restrict_to_target(normalize_candidates(candidates), target)
    rows = layer_shapes(model, input_shape)
    return build_space(rows, find_groups(model, quantizable_layer_names(model), groups), cands)


def check_search_budget(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    b_max: float,
    budget: Mapping[str, float] | None = None,
    target: Any = None,
    candidates: Iterable[Any] = PAPER_CANDIDATES,
    groups: Any = "layer",
) -> None:
    """What ``sdk.search`` checks before it trains (the CLI runs it before float training): the budget's keys
    and limits, the target, and that some config of the candidates meets b_max and every limit
    (``sdk.BudgetInfeasible`` naming the binding constraint otherwise)."""
    limits = check_budget(budget)
    space = prepare_space(model, tuple(input_shape), candidates, groups, target)
    check_feasible(space, build_constraints(space, float(b_max), limits, target))


def run_search(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    settings: SearchSettings,
    *,
    candidates: Iterable[Any] = PAPER_CANDIDATES,
    groups: Any = "layer",
    target: Any = None,
    checkpoint_dir: Any = None,
    progress: bool = True,
    input_shape: Sequence[int] | None = None,
    device: str | torch.device = "cpu",
    init_margin: float | None = None,
    method: str = "bp-nas",
    loss_fn: LossFn | None = None,
    budget: Mapping[str, float] | None = None,
) -> SearchResult:
    """The shared engine; ``settings.objective == "barrier"`` guarantees b_max and ``budget``."""
    if not isinstance(model, nn.Module):
        raise InputError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    if is_quantized(model):
        raise InputError(
            "search needs the float model (it builds its own quantized supernet), not a quantized one."
        )
    limits = check_budget(budget)
    guarantee = settings.objective == "barrier"
    if limits and not guarantee:
        raise InputError(
            "budget= needs the barrier objective (sdk.search); the DNAS baseline has no guarantee."
        )
    if ddp.is_distributed():
        train_loader = ddp.shard_loader(train_loader, seed=settings.seed)
        val_loader = ddp.shard_loader(val_loader, seed=settings.seed + 1)
    x0, _ = peek_batch(train_loader)
    shape = tuple(input_shape) if input_shape is not None else (1, *x0.shape[1:])
    space = prepare_space(model, shape, candidates, groups, target)
    cons = build_constraints(space, settings.b_max, limits, target)
    floor_choice = check_feasible(space, cons) if guarantee else space.cheapest_choice()
    _seed_everything(settings.seed)
    sn = build_supernet(model, space, seed=settings.seed).to(check_device(device))
    if isinstance(target, str):  # train under the codes the target runs (7-bit unsigned on TensorRT)
        set_unsigned_act_bits(sn, target_unsigned_act_bits(target))
    sn.calibrate(x0.to(device))
    ends = _Ends(model, shape, cons, limits, target, method)
    targets = _start_inside(sn, cons, init_margin) if guarantee else []
    if guarantee and targets is None:
        # A limit admits (almost) only the floor config; there is nothing to search.
        return _finish(sn, settings, _trivial_history(sn, settings, floor_choice), floor_choice, ends)
    if guarantee and targets and settings.start == "sensitivity":
        ends = _sensitivity_start(sn, ends, targets, floor_choice, (val_loader, loss_fn, device))
    extra = {
        "groups": [(g.name, g.layers, g.candidates, g.macs) for g in space.groups],
        "shape": shape,
        "margin": init_margin,
        "params": sum(p.numel() for p in model.parameters()),
        **({"budget": limits, "target": _target_name(target)} if limits else {}),
    }
    history = run_supernet(
        sn,
        train_loader,
        val_loader,
        settings,
        fingerprint=settings.fingerprint(extra),
        checkpoint_dir=checkpoint_dir,
        progress=progress,
        device=device,
        loss_fn=loss_fn,
        constraints=cons,
    )
    where = (val_loader, loss_fn, device)
    return _finish(sn, settings, history, argmax_choice(sn.probs()), ends, where)


@dataclass(frozen=True)
class _Ends:
    """What the end of a search certifies against: the model, its input shape, the constraints, and the
    user's budget and target (for the independent recount)."""

    model: nn.Module
    shape: tuple[int, ...]
    constraints: list[Constraint]
    limits: dict[str, float]
    target: Any
    method: str
    start: tuple[str, MixedPrecisionConfig | None, float] = ("hinge", None, 0.0)  # start, its lead, seconds


def _target_name(target: Any) -> str | None:
    priced = pricing_target(target)
    return None if priced is None else str(priced.name)


def _start_inside(sn: Supernet, cons: Sequence[Constraint], init_margin: float | None) -> list[float] | None:
    """Start theta strictly inside every constraint (the barrier's domain); returns each constraint's start
    target (expected <= target), None when a limit leaves no room above its floor (within 2 * INSIDE_TOL in
    barrier units) or no start gets inside."""
    lows = budget_floor(cons)
    gaps = [(c.limit - lows[c.name]) / c.scale for c in cons]
    if any(gap <= 2 * INSIDE_TOL for gap in gaps):
        return None
    bops = cons[0]
    margin = min(init_margin if init_margin is not None else 0.1, 0.5 * gaps[0])
    margin = max(margin, 2 * INSIDE_TOL)
    init_theta_inside(sn, bops.limit, margin)
    targets = [bops.limit - margin] + [
        c.limit - c.scale * max(min(0.05, 0.5 * gap), 2 * INSIDE_TOL) for c, gap in zip(cons[1:], gaps[1:])
    ]
    return targets if len(cons) == 1 or init_theta_within(sn, cons, targets) else None


def _sensitivity_start(
    sn: Supernet,
    ends: _Ends,
    targets: Sequence[float],
    floor: Sequence[int],
    where: tuple[DataLoader, LossFn | None, Any],
) -> _Ends:
    """start="sensitivity": each candidate's val loss on the untrained supernet (every other group at its
    dearest), the knapsack over it inside every constraint (``sdk.nas.heuristics.sensitivity_choice``, as in
    ``sensitivity_config``), then that config leads every group (``init_theta_lead``, inside every start
    target). Without a knapsack solution or a lead inside, the hinge start stays (``start_config`` None)."""
    t0 = time.perf_counter()
    val_loader, loss_fn, device = where
    space, cons = sn.space, ends.constraints
    losses = _fill_losses(sn, dearest_choice(space), cons, val_loader, loss_fn, device, every_pair=True)
    choice, _ = sensitivity_choice(space, losses, cons) if losses else (None, [])
    ok = within_targets(sn, cons, targets)
    if choice is not None and init_theta_lead(sn, choice, floor, ok) is None:
        choice = None
    lead = space.config(choice) if choice is not None else None
    return replace(ends, start=("sensitivity", lead, time.perf_counter() - t0))


def _finish(
    sn: Supernet,
    settings: SearchSettings,
    history: SearchHistory,
    choice: list[int],
    ends: _Ends,
    where: tuple[DataLoader | None, LossFn | None, Any] = (None, None, "cpu"),
) -> SearchResult:
    """Eq. 8 argmax -> repair (if outside) -> fill (to a maximal config) -> certificate."""
    val_loader, loss_fn, device = where
    space, cons = sn.space, ends.constraints
    probs = [[float(v) for v in p.detach().cpu()] for p in sn.probs()]
    pre = space.config(choice)
    pre_bits = space.avg_bits(choice)
    moves: list[Any] = []
    fills: list[FillMove] = []
    barrier = settings.objective == "barrier"
    if barrier and not all_inside(cons, choice):
        choice, moves = repair(space, choice, probs, settings.b_max, cons)
    losses: dict[tuple[int, int], float] = {}
    if barrier and settings.finish == "knapsack" and val_loader is not None:
        losses = _fill_losses(sn, choice, cons, val_loader, loss_fn, device, every_pair=True)
        delta = [[losses[(gi, j)] for j in range(len(g.candidates))] for gi, g in enumerate(space.groups)]
        choice = knapsack(space, delta, cons) or choice
    if barrier and settings.fill:
        if settings.finish != "knapsack" or val_loader is None:
            losses = _fill_losses(sn, choice, cons, val_loader, loss_fn, device)
        choice, fills = fill(space, choice, cons, (lambda g, j: losses[(g, j)]) if losses else None)
    config = space.config(choice)
    count = certify if barrier else recount
    cert = count(ends.model, config, ends.shape, settings.b_max, ends.limits, ends.target)
    return SearchResult(
        config=config,
        certificate=cert,
        b_max=settings.b_max,
        repaired=bool(moves),
        pre_repair_config=pre,
        pre_repair_avg_bits=pre_bits,
        repair_moves=tuple(moves),
        fill_moves=tuple(fills),
        history=history,
        theta={g.name: tuple(float(v) for v in t.detach().cpu()) for g, t in zip(space.groups, sn.theta)},
        groups={g.name: g.layers for g in space.groups},
        seed=settings.seed,
        method=ends.method,
        budget=dict(ends.limits),
        target=_target_name(ends.target) if ends.limits else None,
        start=ends.start[0],
        start_config=ends.start[1],
        start_seconds=ends.start[2],
    )


def _fill_losses(
    sn: Supernet,
    choice: Sequence[int],
    constraints: Sequence[Constraint],
    val_loader: DataLoader | None,
    loss_fn: LossFn | None,
    device: Any,
    every_pair: bool = False,
) -> dict[tuple[int, int], float]:
    """Measured val loss of every single-group upgrade of ``choice`` (``every_pair``: of every candidate of
    every group; empty: nothing affordable, or no val data); averaged over ranks under torch.distributed so
    every rank decides alike."""
    space = sn.space
    pairs = (
        [(gi, j) for gi, g in enumerate(space.groups) for j in range(len(g.candidates))]
        if every_pair
        else affordable_upgrades(space, choice, constraints)
    )
    if not pairs or val_loader is None:
        return {}
    gens = ckpt.loader_generators([val_loader])
    state = ckpt.rng_state(gens)
    try:
        batches = [(x.to(device), to_device(y, device)) for x, y in islice(val_loader, FILL_BATCHES)]
    finally:
        ckpt.set_rng_state(state, gens)
    # every upgrade of a group's upgrade is an upgrade of its start too (dominance is transitive)
    losses = path_losses(sn, choice, pairs, batches, loss_fn if loss_fn is not None else default_loss)
    keys = sorted(losses)
    packed = torch.tensor([losses[k] for k in keys], dtype=torch.float64)
    ddp.all_reduce_mean_([packed])
    return {k: float(v) for k, v in zip(keys, packed)}


def _trivial_history(sn: Supernet, settings: SearchSettings, choice: Sequence[int]) -> SearchHistory:
    with torch.no_grad():
        for t, j in zip(sn.theta, choice):
            t.fill_(0.0)
            t[j] = 1.0
    cands = {g.name: g.candidates for g in sn.space.groups}
    return SearchHistory((snapshot_record(sn, 0, {}, settings.mu(0.0), 0.0),), cands)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
