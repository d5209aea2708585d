"""Float training (SGD + cosine LR, optional distribution reshaping) and top-1 evaluation.

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
from sdk.reshape import RESHAPE_K, reshape_weights_

__all__ = ["TrainResult", "train", "evaluate"]


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
) -> TrainResult:
    """Train ``model`` in place with cross-entropy, SGD (Nesterov-free) and a per-step cosine LR to zero.

    With ``reshape`` the weights are clamped to [-k*mean|W|, k*mean|W|] after every step (BP-NAS Eq. 17-18),
    so the float model is ready for low-bit quantization.
    """
    from tqdm.auto import tqdm

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InputError(f"epochs must be an int >= 1, got {epochs!r}.")
    steps = _num_batches(train_loader)
    torch.manual_seed(seed)
    model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps)
    losses: list[float] = []
    accs: list[float] = []
    val: list[float] = []
    start = time.perf_counter()
    bar = tqdm(total=epochs * steps, disable=not progress, desc="train", unit="step", leave=False)
    try:
        for epoch in range(epochs):
            model.train()
            total_loss, correct, seen = 0.0, 0, 0
            for x, y in train_loader:
                x, y = x.to(device), y.to(device)
                logits = _logits(model(x))
                loss = classification_loss(logits, y)
                if not torch.isfinite(loss):
                    raise InputError(
                        f"training loss became {loss.item()} at epoch {epoch + 1}; lower lr (now {lr}), "
                        "check the inputs for NaN/inf, or normalize them."
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                if reshape:
                    reshape_weights_(model, k)
                total_loss += loss.item() * len(y)
                correct += int((logits.argmax(1) == y).sum())
                seen += len(y)
                bar.update(1)
            losses.append(total_loss / seen)
            accs.append(correct / seen)
            if val_loader is not None:
                val.append(evaluate(model, val_loader, device=device))
            bar.set_postfix(loss=f"{losses[-1]:.3f}", **({"val": f"{val[-1]:.3f}"} if val else {}))
    finally:
        bar.close()
    return TrainResult(tuple(losses), tuple(accs), tuple(val), time.perf_counter() - start)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable[Any], *, device: str | torch.device = "cpu") -> float:
    """Top-1 accuracy of ``model`` on ``loader``, in eval mode (the model's mode is restored afterwards)."""
    was_training = model.training
    model.eval()
    correct, seen = 0, 0
    try:
        for x, y in loader:
            logits = _logits(model(x.to(device)))
            correct += int((logits.argmax(1) == y.to(device)).sum())
            seen += len(y)
    finally:
        model.train(was_training)
    if seen == 0:
        raise InputError("evaluation loader yielded no samples; pass a non-empty loader.")
    return correct / seen


def classification_loss(logits: torch.Tensor, y: Any) -> torch.Tensor:
    """Cross-entropy of ``logits`` (N, classes) against integer labels ``y`` (N,), after checking the labels:
    out-of-range or non-integer labels otherwise fail deep inside torch (or, on some devices, silently)."""
    if not isinstance(y, torch.Tensor):
        raise InputError(f"labels must be a tensor of class indices, got {type(y).__name__}.")
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


def _logits(out: Any) -> torch.Tensor:
    """Logits from a tensor, a tuple/list whose first item is logits, or an object with ``.logits``."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    raise InputError(f"model returned {type(out).__name__}; expected a logits tensor of shape (N, classes).")


def _num_batches(loader: Iterable[Any]) -> int:
    try:
        n = len(loader)  # type: ignore[arg-type]
    except TypeError:
        n = sum(1 for _ in loader)
    if n == 0:
        raise InputError("training loader is empty; check the dataset path and batch_size (drop_last?).")
    return n
