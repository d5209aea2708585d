"""Algorithm 1: alternate weight steps (train split) and architecture steps (val split) on the supernet.

Per step (first-order DARTS alternation):
1. W step on a train batch: L1 = CE (Eq. 15), theta held constant; SGD (momentum 0.9, wd 5e-4) with a
   per-step cosine LR; then distribution reshaping (Eq. 17-18) of the shared float weights.
   ``weight_paths`` picks the network the weights train: "uniform" (default; SPOS-style, one candidate
   per group drawn uniformly each step for the whole search, so the shared weights favour no candidate and
   theta sees a fair accuracy comparison), "sampled" (one path drawn from p) or "mixture" (the paper's
   p-weighted supernet in ``mode``; the weights then favour whichever candidate leads).
2. theta step on a val batch: L2 = CE + barrier(E(SN)) + w1 * Prob-1 (Eq. 16; or CE + lambda * E(SN)
   for the DNAS baseline); Adam (lr 5e-3, wd 1e-3). Sect. 5.2 notes Prob-1 "does not disturb the search in
   the early stage" (its gradient vanishes at uniform p); our start is not uniform, so w1 rises linearly
   from 0 to ``prob1_weight`` over the first ``prob1_ramp`` of the search to keep that property. Its default
   weight is 0.2, not the paper's 1: near one-hot p, Prob-1 pulls a non-leading candidate down ~p_k per unit
   weight while the val CE pulls it up by p_k times its CE gain (~0.01 nat on digits), so at weight 1 Prob-1
   freezes whatever leads and the budget freed while p sharpens is never spent (docs/search.md).
   Warm-up (the first ``warmup_epochs``, one-shot NAS practice as in SPOS/ProxylessNAS): weight steps only,
   each on one path drawn uniformly per group and step, so every candidate's quantizers and the shared
   weights are trained before theta moves; mu, Prob-1's ramp and the progress t start after it.
   The barrier is finite only for E(SN) < b_max, and E depends on theta alone, so after each Adam step a
   step that would leave (b_max - 1e-4) is shortened by halving
   (theta_old + s * (theta_new - theta_old), s = 1/2, 1/4, ...; s = 0 keeps theta_old, always inside).
   The same line search also keeps the Eq. 8 argmax config inside b_max once it is: E(SN) is only an
   expectation, and with E hugging the barrier the leftover mass on cheaper candidates let the argmax
   overshoot (4.005-4.12 bits at b_max = 4 in 3 of 10 searches, each then repaired).
Distributed: W steps through DDP, theta gradients all-reduced (see sdk.nas.distributed).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch.utils.data import DataLoader

from sdk.errors import InputError
from sdk.loop import (
    EpochStats,
    LoopHooks,
    LoopOptions,
    LossFn,
    SgdState,
    check_finite,
    default_loss,
    run_loop,
    sgd_cosine,
    to_device,
)
from sdk.nas import checkpoint as ckpt
from sdk.nas import distributed as ddp
from sdk.nas.constraints import INSIDE_TOL, BopsBudget, Constraint, all_inside
from sdk.nas.history import EpochRecord, SearchHistory
from sdk.nas.losses import barrier, dnas_cost, prob1
from sdk.nas.mixed import Mode
from sdk.nas.sampling import argmax_choice
from sdk.nas.schedule import MuSchedule
from sdk.nas.supernet import Supernet

__all__ = ["SearchSettings", "INSIDE_TOL", "run_supernet", "snapshot_record", "START_CHOICES"]

#: how theta starts: the cost-only hinge (``init_theta_inside``) or led by the measured-sensitivity knapsack
START_CHOICES = ("hinge", "sensitivity")


@dataclass(frozen=True)
class SearchSettings:
    """Everything that determines a search run besides model, data and space (also its checkpoint key)."""

    b_max: float
    epochs: int
    seed: int = 0
    mode: Mode = "full"
    objective: Literal["barrier", "dnas"] = "barrier"
    lam: float = 0.0
    mu: MuSchedule = field(default_factory=MuSchedule)
    prob1_weight: float = 0.2
    prob1_ramp: float = 0.3
    w_lr: float = 0.05
    w_momentum: float = 0.9
    w_weight_decay: float = 5e-4
    theta_lr: float = 0.05  # 10x the first default: short searches barely moved theta (docs/search.md)
    theta_weight_decay: float = 1e-3
    warmup_epochs: int = 0
    weight_paths: Literal["uniform", "mixture", "sampled"] = "uniform"
    reshape_k: float | None = 2.0
    steps_per_epoch: int | None = None
    fill: bool = True
    finish: Literal["fill", "knapsack"] = "fill"
    start: Literal["hinge", "sensitivity"] = "hinge"

    def __post_init__(self) -> None:
        if not (isinstance(self.b_max, (int, float)) and math.isfinite(self.b_max) and self.b_max > 0):
            raise InputError(f"b_max must be a positive number of bits, got {self.b_max!r}; e.g. 3.0.")
        for name in ("epochs", "seed", "warmup_epochs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "epochs" else 0):
                raise InputError(f"{name} must be an int >= {1 if name == 'epochs' else 0}, got {v!r}.")
        if self.warmup_epochs >= self.epochs:
            raise InputError(f"warmup_epochs ({self.warmup_epochs}) must be < epochs ({self.epochs}).")
        if self.mode not in ("full", "sampled"):
            raise InputError(f"mode must be 'full' or 'sampled', got {self.mode!r}.")
        if self.weight_paths not in ("uniform", "mixture", "sampled"):
            raise InputError(
                f"weight_paths must be 'uniform', 'mixture' or 'sampled', got {self.weight_paths!r}."
            )
        if self.finish not in ("fill", "knapsack"):
            raise InputError(f"finish must be 'fill' or 'knapsack', got {self.finish!r}.")
        if self.start not in START_CHOICES:
            raise InputError(
                f"start must be one of {', '.join(map(repr, START_CHOICES))}, got {self.start!r}."
            )
        if self.objective not in ("barrier", "dnas"):
            raise InputError(f"objective must be 'barrier' or 'dnas', got {self.objective!r}.")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise InputError(f"steps_per_epoch must be >= 1 or None, got {self.steps_per_epoch!r}.")
        if not 0.0 <= self.prob1_ramp <= 1.0:
            raise InputError(
                f"prob1_ramp must be in [0, 1] (a fraction of the search), got {self.prob1_ramp!r}."
            )
        for name in ("w_lr", "theta_lr", "prob1_weight", "lam"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise InputError(f"{name} must be finite and >= 0, got {v!r}.")

    def fingerprint(self, extra: Any) -> str:
        blob = json.dumps({"settings": asdict(self), "extra": extra}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


def snapshot_record(
    sn: Supernet, epoch: int, stats: dict[str, float], mu: float, seconds: float
) -> EpochRecord:
    """An EpochRecord of the supernet's current theta plus the epoch's mean losses."""
    with torch.no_grad():
        probs = [p.detach().cpu() for p in sn.probs()]
        e_bits = float(sn.expected_bits())
    names = [g.name for g in sn.space.groups]
    return EpochRecord(
        epoch=epoch,
        train_ce=stats.get("train_ce", math.nan),
        val_ce=stats.get("val_ce", math.nan),
        barrier=stats.get("barrier", math.nan),
        prob1=stats.get("prob1", math.nan),
        expected_bits=e_bits,
        sampled_bits=sn.space.avg_bits(sn.argmax_choice()),
        mu=mu,
        backtracks=int(stats.get("backtracks", 0)),
        seconds=seconds,
        probs={n: tuple(float(v) for v in p) for n, p in zip(names, probs)},
    )


def run_supernet(
    sn: Supernet,
    train_loader: DataLoader,
    val_loader: DataLoader,
    s: SearchSettings,
    *,
    fingerprint: str,
    checkpoint_dir: Any = None,
    progress: bool = True,
    device: torch.device | str = "cpu",
    loss_fn: LossFn | None = None,
    constraints: Sequence[Constraint] | None = None,
) -> SearchHistory:
    """Train the supernet for ``s.epochs`` (resuming from ``checkpoint_dir`` when it holds this search):
    the weight steps are ``sdk.loop``'s, each followed by one theta step (after warm-up)."""
    options = LoopOptions(
        epochs=s.epochs,
        lr=s.w_lr,
        momentum=s.w_momentum,
        weight_decay=s.w_weight_decay,
        reshape_k=s.reshape_k,
        steps_per_epoch=s.steps_per_epoch,
        progress=progress,
        desc="search",
    )
    state = sgd_cosine(sn.weight_params(), options, train_loader)
    cons: list[Constraint] = list(constraints) if constraints is not None else [BopsBudget(sn.space, s.b_max)]
    alt = _Alternation(sn, s, (train_loader, val_loader), state, cons, loss_fn or default_loss, device)
    alt.checkpoint = (checkpoint_dir, fingerprint)
    start = alt.resume() if checkpoint_dir is not None else 0
    hooks = LoopHooks(alt.before_epoch, alt.theta_step, alt.after_epoch, alt.postfix)
    run_loop(sn, train_loader, options, state, start_epoch=start, forward=alt.weight_forward,
             loss_fn=alt.loss_fn, hooks=hooks, device=device)  # fmt: skip
    return alt.history


class _Alternation:
    """Algorithm 1 as hooks of the one training loop: which path the weight step trains, the theta step
    after it, the per-epoch history record and checkpoint."""

    def __init__(
        self,
        sn: Supernet,
        s: SearchSettings,
        loaders: tuple[DataLoader, DataLoader],
        state: SgdState,
        constraints: list[Constraint],
        loss_fn: LossFn,
        device: torch.device | str,
    ) -> None:
        self.sn, self.s, self.loaders, self.state = sn, s, loaders, state
        self.constraints, self.loss_fn, self.device = constraints, loss_fn, device
        self.gens = ckpt.loader_generators(loaders)
        self.opt_t = torch.optim.Adam(sn.theta_params(), lr=s.theta_lr, weight_decay=s.theta_weight_decay)
        cands = {g.name: g.candidates for g in sn.space.groups}
        self.history = SearchHistory((snapshot_record(sn, 0, {}, s.mu(0.0), 0.0),), cands)
        self.checkpoint: tuple[Any, str] = (None, "")
        ignore = [f"theta.{i}" for i in range(len(sn.theta))]
        find_unused = s.mode == "sampled" or s.warmup_epochs > 0 or s.weight_paths != "mixture"
        self.net = ddp.wrap_ddp(sn, ignore=ignore, find_unused=find_unused)
        self.epoch = 0
        self.val_iter: Iterator[Any] = iter(())

    def resume(self) -> int:
        """Restore the last finished epoch of this search from the checkpoint; returns the epoch to start."""
        directory, fingerprint = self.checkpoint
        blob = ckpt.load(directory, fingerprint)
        if blob is None:
            return 0
        self.sn.load_state_dict(blob["supernet"])
        self.state.optimizer.load_state_dict(blob["opt_w"])
        self.opt_t.load_state_dict(blob["opt_theta"])
        self.state.scheduler.load_state_dict(blob["sched"])
        self.history = SearchHistory.from_dict(blob["history"])
        ckpt.set_rng_state(blob["rng"], self.gens)
        self.sn.generator.set_state(blob["path_rng"])
        return int(blob["epoch"])

    def before_epoch(self, epoch: int) -> None:
        ddp.set_epoch(self.loaders, epoch)
        self.val_iter = iter(self.loaders[1])
        self.epoch = epoch

    def weight_forward(self, x: torch.Tensor) -> Any:
        # warm-up (and weight_paths="uniform" throughout): one uniformly drawn path per step trains every
        # candidate's weights and quantizers; "sampled" draws it from p, "mixture" runs s.mode
        s = self.s
        uniform = self.epoch < s.warmup_epochs or s.weight_paths == "uniform"
        self.sn.set_mode("sampled" if uniform or s.weight_paths == "sampled" else s.mode, 1)
        return self.net(x, grad_theta=False, uniform=uniform)

    def theta_step(self, epoch: int, step: int) -> dict[str, float] | None:
        s = self.s
        if epoch < s.warmup_epochs:
            return None
        try:
            xv, yv = next(self.val_iter)
        except StopIteration:
            self.val_iter = iter(self.loaders[1])
            xv, yv = next(self.val_iter)
        t = _progress(s, epoch, step, self.state.steps_per_epoch)
        w1 = s.prob1_weight * (min(1.0, t / s.prob1_ramp) if s.prob1_ramp > 0 else 1.0)
        x, y = xv.to(self.device), to_device(yv, self.device)
        out = _theta_step(self.sn, self.opt_t, s, x, y, s.mu(t), w1, epoch, self.loss_fn, self.constraints)
        return dict(zip(("val_ce", "barrier", "prob1", "backtracks", "theta_steps"), out))

    def postfix(self) -> dict[str, str]:
        with torch.no_grad():
            e_now = float(self.sn.expected_bits())
        return {"E": f"{e_now:.3f}", "bits": f"{self.sn.space.avg_bits(self.sn.argmax_choice()):.3f}"}

    def after_epoch(self, stats: EpochStats) -> None:
        s, epoch = self.s, stats.epoch
        n_theta = max(stats.extra.get("theta_steps", 0.0), 1.0)
        searched = epoch >= s.warmup_epochs
        figures = {
            k: stats.extra[k] / n_theta if searched else math.nan for k in ("val_ce", "barrier", "prob1")
        }
        figures["train_ce"] = stats.loss
        figures["backtracks"] = round(stats.extra.get("backtracks", 0.0))
        mu = s.mu(_progress(s, epoch + 1, 0, self.state.steps_per_epoch))
        self.history = self.history.appended(snapshot_record(self.sn, epoch + 1, figures, mu, stats.seconds))
        directory, fingerprint = self.checkpoint
        if directory is None:
            return
        if ddp.rank() == 0:
            blob = {
                "fingerprint": fingerprint,
                "epoch": epoch + 1,
                "supernet": self.sn.state_dict(),
                "opt_w": self.state.optimizer.state_dict(),
                "opt_theta": self.opt_t.state_dict(),
                "sched": self.state.scheduler.state_dict(),
                "history": self.history.to_dict(),
                "rng": ckpt.rng_state(self.gens),
                "path_rng": self.sn.generator.get_state(),
            }
            ckpt.save_atomic(directory, blob)
        ddp.barrier()


def _progress(s: SearchSettings, epoch: int, step: int, steps: int) -> float:
    """Fraction of the architecture-search phase done (0 during warmup)."""
    span = s.epochs - s.warmup_epochs
    return max(0.0, (epoch - s.warmup_epochs + step / steps) / span)


def _theta_step(
    sn: Supernet,
    opt: torch.optim.Optimizer,
    s: SearchSettings,
    x: torch.Tensor,
    y: torch.Tensor,
    mu: float,
    prob1_weight: float,
    epoch: int,
    loss_fn: LossFn = default_loss,
    constraints: Sequence[Constraint] | None = None,
) -> list[float]:
    """One architecture step; returns [val loss, barrier, prob1, backtracks, 1]. The barrier is the sum of
    Eq. 12 over ``constraints`` (default: the BOPs budget b_max alone), each on ``expected / scale`` against
    ``limit / scale`` (weight bytes and cycles as a fraction of their limit, so each is scaled like bits)."""
    cons = constraints if constraints is not None else [BopsBudget(sn.space, s.b_max)]
    sn.set_mode(s.mode, 2 if s.mode == "sampled" else 1)
    thetas = sn.theta_params()
    val_ce = loss_fn(sn(x), y)
    check_finite(val_ce, "search architecture loss", epoch, f"theta_lr (now {s.theta_lr})")
    probs = sn.probs()
    if s.objective == "barrier":
        bar = torch.zeros((), dtype=torch.float64, device=val_ce.device)
        for c in cons:
            expected = c.expected(probs)
            term = barrier(expected / c.scale, c.limit / c.scale, mu)  # bits, or a fraction of the limit
            if not torch.isfinite(term):
                raise RuntimeError(
                    f"internal error: expected {c.name}={float(expected):.6f} left the barrier domain "
                    f"(limit {c.limit})"
                )
            bar = bar + term
        reg = bar.to(val_ce.dtype)
    else:
        e_bits = sn.expected_bits()
        bar = e_bits.new_zeros(())
        reg = dnas_cost(e_bits, s.lam).to(val_ce.dtype)
    p1 = prob1(probs)
    loss = val_ce + reg + prob1_weight * p1
    grads = torch.autograd.grad(loss, thetas)
    ddp.all_reduce_mean_(grads)
    old = [t.detach().clone() for t in thetas]
    keep_argmax = s.objective == "barrier" and _argmax_inside(sn, s.b_max, cons)
    for t, g in zip(thetas, grads):
        t.grad = g
    opt.step()
    opt.zero_grad(set_to_none=True)
    backtracks = _stay_inside(sn, old, s.b_max, keep_argmax, cons) if s.objective == "barrier" else 0
    return [val_ce.item(), bar.item(), p1.item(), float(backtracks), 1.0]


@torch.no_grad()
def _argmax_inside(sn: Supernet, b_max: float, constraints: Sequence[Constraint] | None = None) -> bool:
    """Whether the Eq. 8 argmax config of the current theta satisfies every constraint (default: b_max)."""
    cons = constraints if constraints is not None else [BopsBudget(sn.space, b_max)]
    return all_inside(cons, argmax_choice(sn.probs()))


@torch.no_grad()
def _stay_inside(
    sn: Supernet,
    old: Sequence[torch.Tensor],
    b_max: float,
    keep_argmax: bool = False,
    constraints: Sequence[Constraint] | None = None,
) -> int:
    """Shorten the last theta step by halving until every constraint's expected value is <= its limit minus
    its margin (E(SN) <= b_max - INSIDE_TOL for the BOPs budget) and, with ``keep_argmax``, the argmax config
    still satisfies them; returns the halvings (31: the step was undone)."""
    cons = constraints if constraints is not None else [BopsBudget(sn.space, b_max)]

    def inside() -> bool:
        probs = sn.probs()
        if any(float(c.expected(probs)) > c.limit - c.margin for c in cons):
            return False
        return not keep_argmax or all_inside(cons, argmax_choice(probs))

    if inside():
        return 0
    new = [t.detach().clone() for t in sn.theta]
    scale = 1.0
    for k in range(1, 31):
        scale *= 0.5
        for t, o, n in zip(sn.theta, old, new):
            t.copy_(o + scale * (n - o))
        if inside():
            return k
    for t, o in zip(sn.theta, old):
        t.copy_(o)
    return 31
