"""``sdk.retrain``: quantization-aware training of a (searched) config, starting from the float weights.

The paper retrains the sampled model with the supernet's weight-training settings: SGD, momentum 0.9,
weight decay 5e-4, cosine LR; here per step, with distribution reshaping (Eq. 17-18) after every step.
Runs data-parallel (DDP + DistributedSampler) when a process group is initialised.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from sdk.config import MixedPrecisionConfig
from sdk.errors import InputError
from sdk.nas import distributed as ddp
from sdk.reshape import reshape_weights_
from sdk.training import TrainResult, evaluate

__all__ = ["retrain"]


def retrain(
    model: nn.Module,
    config: MixedPrecisionConfig | Mapping[str, Any],
    train_loader: DataLoader,
    val_loader: DataLoader | None = None,
    epochs: int = 30,
    *,
    lr: float = 0.02,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    reshape_k: float | None = 2.0,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device = "cpu",
    residual_bits: int = 8,
    output_bits: int = 8,
) -> nn.Module:
    """QAT of ``sdk.quantize(model, config)``; returns the quantized model (eval mode) with its
    per-epoch accuracies in ``qmodel.retrain_history`` (a TrainResult). ``model`` is not modified."""
    from tqdm.auto import tqdm

    from sdk.nas.api import peek_batch
    from sdk.quant import quantize

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InputError(f"epochs must be an int >= 1, got {epochs!r}.")
    torch.manual_seed(seed)
    qmodel = quantize(model, config, residual_bits=residual_bits, output_bits=output_bits).to(device)
    if ddp.is_distributed():
        train_loader = ddp.shard_loader(train_loader, seed=seed)
    x0, _ = peek_batch(train_loader)
    with torch.no_grad():  # initialise every activation quantizer before DDP broadcasts rank 0's state
        qmodel.eval()(x0.to(device))
    net = ddp.wrap_ddp(qmodel)
    steps = len(train_loader)
    opt = torch.optim.SGD(qmodel.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps)
    loss_fn = nn.CrossEntropyLoss()
    losses: list[float] = []
    accs: list[float] = []
    vals: list[float] = []
    start = time.perf_counter()
    bar = tqdm(total=epochs * steps, desc="retrain", disable=not progress or ddp.rank() != 0, leave=False)
    try:
        for epoch in range(epochs):
            ddp.set_epoch([train_loader], epoch)
            qmodel.train()
            sums = torch.zeros(3, dtype=torch.float64)
            for x, y in train_loader:
                x, y = x.to(device), y.to(device)
                logits = net(x)
                loss = loss_fn(logits, y)
                if not torch.isfinite(loss):
                    raise InputError(
                        f"retraining loss became {loss.item()} in epoch {epoch + 1}; lower lr ({lr})."
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                if reshape_k:
                    reshape_weights_(qmodel, reshape_k)
                sums += torch.tensor(
                    [loss.item() * len(y), float((logits.argmax(1) == y).sum()), float(len(y))]
                )
                bar.update(1)
            ddp.all_reduce_mean_([sums])
            losses.append(float(sums[0] / sums[2]))
            accs.append(float(sums[1] / sums[2]))
            if val_loader is not None:
                vals.append(evaluate(qmodel, val_loader, device=device))
            bar.set_postfix(loss=f"{losses[-1]:.3f}", **({"val": f"{vals[-1]:.3f}"} if vals else {}))
    finally:
        bar.close()
    qmodel.eval()
    history = TrainResult(tuple(losses), tuple(accs), tuple(vals), time.perf_counter() - start)
    qmodel.__dict__["retrain_history"] = history  # plain attribute, not a submodule or state
    return qmodel
