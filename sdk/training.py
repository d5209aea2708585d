"""Float training (the one loop of ``sdk.loop``: SGD + cosine LR, optional reshaping) and top-1 evaluation.

Named ``training`` rather than ``train`` so the module never shadows the public ``sdk.train`` function.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sdk.errors import InputError
from sdk.loop import (
    EpochStats,
    LoopOptions,
    LossFn,
    MetricFn,
    check_epochs,
    classification_loss,
    logits_of,
    run_loop,
    sgd_cosine,
)
from sdk.reshape import RESHAPE_K

__all__ = ["TrainResult", "train", "evaluate", "history_of", "classification_loss"]


@dataclass(frozen=True)
class TrainResult:
    """Per-epoch history of a training run; ``val_acc`` is empty without a validation loader."""

    train_loss: tuple[float, ...]
    train_acc: tuple[float, ...]
    val_acc: tuple[float, ...]
    seconds: float

    @property
    def final_val_acc(self) -> float:
        return self.val_acc[-1] if self.val_acc else math.nan


def train(
    model: nn.Module,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any] | None = None,
    *,
    epochs: int,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    reshape: bool = True,
    k: float = RESHAPE_K,
    device: str | torch.device = "cpu",
    progress: bool = True,
    seed: int = 0,
    loss_fn: LossFn | None = None,
    metric_fn: MetricFn | None = None,
) -> TrainResult:
    """Train ``model`` in place with SGD (Nesterov-free) and a per-step cosine LR to zero (``sdk.loop``).

    ``loss_fn(model_output, targets)`` replaces cross-entropy on logits; ``metric_fn(model, loader)`` the
    top-1 validation accuracy (``train_acc`` is nan with a custom loss). With ``reshape`` the weights are
    clamped to [-k*mean|W|, k*mean|W|] after every step (BP-NAS Eq. 17-18), so the float model is ready for
    low-bit quantization.
    """
    check_epochs(epochs)
    options = LoopOptions(
        epochs=epochs,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        reshape_k=k if reshape else None,
        progress=progress,
        desc="training",
    )
    torch.manual_seed(seed)
    model.to(device)
    state = sgd_cosine(model.parameters(), options, train_loader)
    start = time.perf_counter()
    stats = run_loop(
        model,
        train_loader,
        options,
        state,
        val_loader=val_loader,
        loss_fn=loss_fn,
        metric_fn=metric_fn,
        device=device,
    )
    return history_of(stats, time.perf_counter() - start)


def history_of(stats: Iterable[EpochStats], seconds: float) -> TrainResult:
    """A TrainResult from the loop's per-epoch stats."""
    rows = list(stats)
    return TrainResult(
        tuple(s.loss for s in rows),
        tuple(s.train_acc for s in rows),
        tuple(s.val for s in rows if not math.isnan(s.val)),
        seconds,
    )


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable[Any], *, device: str | torch.device = "cpu") -> float:
    """Top-1 accuracy of ``model`` on ``loader``, in eval mode (the model's mode is restored afterwards)."""
    was_training = model.training
    model.eval()
    correct, seen = 0, 0
    try:
        for x, y in loader:
            logits = logits_of(model(x.to(device)))
            correct += int((logits.argmax(1) == y.to(device)).sum())
            seen += len(y)
    finally:
        model.train(was_training)
    if seen == 0:
        raise InputError("evaluation loader yielded no samples; pass a non-empty loader.")
    return correct / seen
