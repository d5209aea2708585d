"""The one training loop: epochs of SGD steps with a per-step cosine LR, distribution reshaping, a finite-loss
check, progress and per-epoch hooks. Float training (``sdk.training``), QAT retraining (``sdk.nas.qat``) and
the search's weight steps (``sdk.nas.algorithm``) all run it, so a fix or a new loss reaches all three.

The loop knows nothing about the task: ``loss_fn(model_output, targets)`` gives the scalar loss (None:
cross-entropy on logits, ``classification_loss``) and the validation metric is ``metric_fn(model, loader)``
(None: top-1, ``sdk.training.evaluate``). Targets are only ever moved to the device; a detection task's list
of box tensors passes through untouched. Running training accuracy is kept only for the default loss.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sdk.errors import InputError
from sdk.reshape import reshape_weights_

__all__ = [
    "LossFn",
    "MetricFn",
    "LoopOptions",
    "LoopHooks",
    "EpochStats",
    "SgdState",
    "sgd_cosine",
    "run_loop",
    "check_finite",
    "classification_loss",
    "default_loss",
    "logits_of",
    "to_device",
    "num_batches",
    "check_epochs",
]

#: (model output, targets) -> scalar loss tensor.
LossFn = Callable[[Any, Any], torch.Tensor]
#: (model, loader) -> a validation score (higher is better), e.g. top-1 accuracy.
MetricFn = Callable[[nn.Module, Iterable[Any]], float]


@dataclass(frozen=True)
class LoopOptions:
    """What one run of the loop does; ``steps_per_epoch`` caps an epoch (None: the whole loader)."""

    epochs: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 5e-4
    reshape_k: float | None = 2.0
    steps_per_epoch: int | None = None
    progress: bool = True
    desc: str = "train"  # names the run in the progress bar ("train 3/10") and in errors

    def __post_init__(self) -> None:
        check_epochs(self.epochs)
        if not (math.isfinite(self.lr) and self.lr >= 0):
            raise InputError(f"lr must be finite and >= 0, got {self.lr!r}.")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise InputError(f"steps_per_epoch must be >= 1 or None, got {self.steps_per_epoch!r}.")


@dataclass(frozen=True)
class EpochStats:
    """One epoch's means: loss per sample, top-1 (nan for a custom loss), the validation metric (nan without
    a validation loader) and the per-step means of whatever ``LoopHooks.after_step`` returned."""

    epoch: int
    loss: float
    train_acc: float
    val: float
    extra: Mapping[str, float]
    seconds: float


@dataclass(frozen=True)
class LoopHooks:
    """Optional callbacks. ``before_epoch(epoch)`` runs after ``model.train()``; ``after_step(epoch, step)``
    runs after each weight step and may return numbers to average over the epoch (e.g. the search's theta
    step); ``after_epoch(stats)`` sees the epoch's figures (checkpoints go here); ``postfix()`` adds to the
    progress bar."""

    before_epoch: Callable[[int], None] | None = None
    after_step: Callable[[int, int], Mapping[str, float] | None] | None = None
    after_epoch: Callable[[EpochStats], None] | None = None
    postfix: Callable[[], Mapping[str, str]] | None = None


@dataclass
class SgdState:
    """The optimizer and its per-step cosine schedule; callers checkpoint and restore both."""

    optimizer: torch.optim.SGD
    scheduler: torch.optim.lr_scheduler.CosineAnnealingLR
    steps_per_epoch: int
    history: list[EpochStats] = field(default_factory=list)


def sgd_cosine(params: Iterable[nn.Parameter], options: LoopOptions, loader: Iterable[Any]) -> SgdState:
    """SGD (momentum, weight decay) with the LR annealed by cosine to zero over every step of the run."""
    steps = num_batches(loader)
    if options.steps_per_epoch is not None:
        steps = min(steps, options.steps_per_epoch)
    opt = torch.optim.SGD(params, lr=options.lr, momentum=options.momentum, weight_decay=options.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=options.epochs * steps)
    return SgdState(opt, sched, steps)


def run_loop(
    model: nn.Module,
    loader: Iterable[Any],
    options: LoopOptions,
    state: SgdState,
    *,
    val_loader: Iterable[Any] | None = None,
    start_epoch: int = 0,
    forward: Callable[[torch.Tensor], Any] | None = None,
    loss_fn: LossFn | None = None,
    metric_fn: MetricFn | None = None,
    hooks: LoopHooks = LoopHooks(),
    device: str | torch.device = "cpu",
) -> list[EpochStats]:
    """Train ``model`` in place for epochs ``start_epoch .. options.epochs - 1``; returns their stats.

    ``forward(x)`` replaces ``model(x)`` (a DDP wrapper, a supernet's path choice); reshaping clamps
    ``model``'s conv/linear weights after every step. Under torch.distributed the epoch sums are averaged
    over ranks and rank 0's BatchNorm statistics copied to all before validation.
    """
    from tqdm.auto import tqdm

    from sdk.nas import distributed as ddp

    run = forward if forward is not None else model
    loss_of = loss_fn if loss_fn is not None else default_loss
    evaluate_ = metric_fn if metric_fn is not None else _top1
    steps = state.steps_per_epoch
    out: list[EpochStats] = []
    bar = tqdm(
        total=(options.epochs - start_epoch) * steps,
        desc=options.desc,
        unit="step",
        disable=not options.progress or ddp.rank() != 0,
        leave=False,
    )
    try:
        for epoch in range(start_epoch, options.epochs):
            t0 = time.perf_counter()
            bar.set_description(f"{options.desc} {epoch + 1}/{options.epochs}", refresh=False)
            model.train()
            if hooks.before_epoch is not None:
                hooks.before_epoch(epoch)
            sums = torch.zeros(3, dtype=torch.float64)  # loss * n, correct, n
            extra: dict[str, float] = {}
            for step, (x, y) in enumerate(loader):
                if step >= steps:
                    break
                x, y = x.to(device), to_device(y, device)
                output = run(x)
                loss = loss_of(output, y)
                check_finite(loss, f"{options.desc} loss", epoch, f"lr (now {options.lr})")
                state.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                state.optimizer.step()
                state.scheduler.step()
                if options.reshape_k:
                    reshape_weights_(model, options.reshape_k)
                n = x.shape[0]
                correct = _correct(output, y) if loss_fn is None else math.nan
                sums += torch.tensor([loss.item() * n, correct, float(n)], dtype=torch.float64)
                if hooks.after_step is not None:
                    for k, v in (hooks.after_step(epoch, step) or {}).items():
                        extra[k] = extra.get(k, 0.0) + float(v)
                if options.progress and (step % 5 == 0 or step == steps - 1):
                    more = hooks.postfix() if hooks.postfix is not None else {}
                    bar.set_postfix(loss=f"{loss.item():.3f}", **more)
                bar.update(1)
            names = sorted(extra)
            packed = torch.cat([sums, torch.tensor([extra[k] for k in names], dtype=torch.float64)])
            ddp.all_reduce_mean_([packed])
            ddp.broadcast_bn_stats_(model)
            val = evaluate_(model, val_loader) if val_loader is not None else math.nan
            seen = max(float(packed[2]), 1.0)
            stats = EpochStats(
                epoch=epoch,
                loss=float(packed[0]) / seen,
                train_acc=float(packed[1]) / seen,
                val=val,
                extra={k: float(v) for k, v in zip(names, packed[3:])},
                seconds=time.perf_counter() - t0,
            )
            out.append(stats)
            state.history.append(stats)
            if not math.isnan(val):
                bar.set_postfix(loss=f"{stats.loss:.3f}", val=f"{val:.3f}")
            if hooks.after_epoch is not None:
                hooks.after_epoch(stats)
    finally:
        bar.close()
    return out


def check_finite(loss: torch.Tensor, what: str, epoch: int, knob: str) -> None:
    """Raise InputError naming the epoch and the knob to lower when ``loss`` is NaN or infinite."""
    if not torch.isfinite(loss):
        raise InputError(
            f"{what} became {loss.item()} in epoch {epoch + 1}; lower {knob}, check the inputs for "
            "NaN/inf, or normalize them."
        )


def check_epochs(epochs: Any) -> None:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InputError(f"epochs must be an int >= 1, got {epochs!r}.")


def classification_loss(logits: torch.Tensor, y: Any) -> torch.Tensor:
    """Cross-entropy of ``logits`` (N, classes) against integer labels ``y`` (N,), after checking the labels:
    out-of-range or non-integer labels otherwise fail deep inside torch (or, on some devices, silently)."""
    if not isinstance(y, torch.Tensor):
        raise InputError(
            f"labels must be a tensor of class indices, got {type(y).__name__}; for other targets pass "
            "loss_fn=(model_output, targets) -> loss."
        )
    if y.dtype.is_floating_point or y.dtype == torch.bool or y.dtype.is_complex:
        raise InputError(f"labels must be integer class indices (torch.long), got dtype {y.dtype}.")
    if y.ndim != 1 or len(y) != logits.shape[0]:
        raise InputError(f"labels must be shaped ({logits.shape[0]},) for this batch, got {tuple(y.shape)}.")
    classes = logits.shape[1]
    lo, hi = (int(y.min()), int(y.max())) if len(y) else (0, 0)
    if lo < 0 or hi >= classes:
        raise InputError(
            f"labels must lie in [0, {classes}) for a model with {classes} outputs, got {lo}..{hi}; "
            f"build the model with num_classes={max(classes, hi + 1)} or fix the labels."
        )
    return nn.functional.cross_entropy(logits, y.long())


def logits_of(out: Any) -> torch.Tensor:
    """Logits from a tensor, a tuple/list whose first item is logits, or an object with ``.logits``."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    raise InputError(
        f"model returned {type(out).__name__}; expected a logits tensor of shape (N, classes) "
        "(or pass loss_fn and metric_fn that read this output)."
    )


def to_device(y: Any, device: str | torch.device) -> Any:
    """Targets on ``device``: a tensor, or lists/tuples/dicts of tensors (detection), anything else as is."""
    if isinstance(y, torch.Tensor):
        return y.to(device)
    if isinstance(y, (list, tuple)):
        return type(y)(to_device(v, device) for v in y)
    if isinstance(y, dict):
        return {k: to_device(v, device) for k, v in y.items()}
    return y


def num_batches(loader: Iterable[Any]) -> int:
    try:
        n = len(loader)  # type: ignore[arg-type]
    except TypeError:
        n = sum(1 for _ in loader)
    if n == 0:
        raise InputError("training loader is empty; check the dataset path and batch_size (drop_last?).")
    return n


def default_loss(output: Any, y: Any) -> torch.Tensor:
    return classification_loss(logits_of(output), y)


def _correct(output: Any, y: Any) -> float:
    return float((logits_of(output).detach().argmax(1) == y).sum())


def _top1(model: nn.Module, loader: Iterable[Any]) -> float:
    from sdk.training import evaluate

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    return evaluate(model, loader, device=device)
