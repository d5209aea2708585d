"""``sdk.retrain``: quantization-aware training of a (searched) config, starting from the float weights.

The paper retrains the sampled model with the supernet's weight-training settings: SGD, momentum 0.9,
weight decay 5e-4, cosine LR; here per step, with distribution reshaping (Eq. 17-18) after every step.
Runs data-parallel (DDP + DistributedSampler) when a process group is initialised.

BatchNorm trains folded by default (``calibration.FoldedConvBN``, the simulated fold of Jacob et al. 2018):
the weight quantizer sees ``W * g/sigma``, so the model returned, in eval mode, is exactly the model
``sdk.export`` deploys. Trained unfolded (conv -> fake-quant -> BN), export would re-quantize the folded
weights and flip some decisions (about 1% of top-1 decisions of digits_cnn at (2,3)).
- BN statistics are those of each conv's float output on the quantized network's activations (the batch
  statistics of Krishnamoorthi 2018 / torch.ao's ConvBn2d slow path; see ``FoldedConvBN.forward``): taken
  from the quantized output they feed back into the fold and diverged at 2-bit weights.
- Before training, they are re-estimated that way (up to ``BN_REESTIMATE_BATCHES`` training batches) and the
  weight clips moved into the fold domain with them, so ``sigma`` does not drift from the float model's
  statistics during training, which at 2-bit weights silently moves every weight clip by ~10%.
- BN statistics are frozen for the last epoch(s), as torch.ao's ``freeze_bn_stats`` and Jacob et al. do,
  so the final steps train with the very scales and shifts that are deployed.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from sdk.config import MixedPrecisionConfig
from sdk.device import check_device
from sdk.errors import InputError
from sdk.loop import LoopHooks, LoopOptions, LossFn, MetricFn, check_epochs, run_loop, sgd_cosine
from sdk.nas import checkpoint as ckpt
from sdk.nas import distributed as ddp
from sdk.quant.calibration_mode import calibration_mode
from sdk.training import history_of

__all__ = ["retrain", "BN_REESTIMATE_BATCHES"]

BN_REESTIMATE_BATCHES = 32


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
    fold_bn: bool = True,
    freeze_bn_epochs: int | None = None,
    loss_fn: LossFn | None = None,
    metric_fn: MetricFn | None = None,
    target: Any = None,
) -> nn.Module:
    """QAT of ``sdk.quantize(model, config)``; returns the quantized model (eval mode) with its
    per-epoch accuracies in ``qmodel.retrain_history`` (a TrainResult). ``model`` is not modified.

    Args:
        fold_bn: train each conv -> BN pair as a ``calibration.FoldedConvBN``, so the returned model equals
            its export; ``False`` trains BN unfolded (export then folds and re-quantizes, see module doc).
        freeze_bn_epochs: how many final epochs use frozen BN running statistics (BN in eval mode, its
            affine parameters still train); ``None`` means 1 when ``epochs >= 2``, else 0.
        loss_fn: ``(model_output, targets) -> loss``; None is cross-entropy on logits.
        metric_fn: ``(model, loader) -> score`` for ``val_loader``; None is top-1 accuracy.
        target: the deployment target (name or ``targets.Target``) to train for: ``sdk.quantize(...,
            target=)`` caps unsigned activation codes at what it runs (7 bits on TensorRT).
    """
    from sdk.nas.api import peek_batch
    from sdk.quant import quantize

    frozen = _frozen_epochs(epochs, freeze_bn_epochs)
    options = LoopOptions(epochs=epochs, lr=lr, momentum=momentum, weight_decay=weight_decay,
                          reshape_k=reshape_k, progress=progress, desc="retraining")  # fmt: skip
    torch.manual_seed(seed)
    qmodel = quantize(model, config, residual_bits=residual_bits, output_bits=output_bits, target=target)
    qmodel.to(check_device(device))
    if ddp.is_distributed():
        train_loader = ddp.shard_loader(train_loader, seed=seed)
    x0, _ = peek_batch(train_loader)
    with calibration_mode(qmodel):  # initialise every activation quantizer before DDP broadcasts rank 0's
        qmodel(x0.to(device))
    if fold_bn and any(isinstance(m, nn.BatchNorm2d) for m in qmodel.modules()):
        qmodel = _fold_for_qat(qmodel, train_loader, device)  # per rank; DDP broadcasts rank 0's fold
    net = ddp.wrap_ddp(qmodel)
    state = sgd_cosine(qmodel.parameters(), options, train_loader)

    def before_epoch(epoch: int) -> None:
        ddp.set_epoch([train_loader], epoch)
        if epoch >= epochs - frozen:
            _freeze_bn_stats(qmodel)

    start = time.perf_counter()
    hooks = LoopHooks(before_epoch=before_epoch)
    stats = run_loop(qmodel, train_loader, options, state, val_loader=val_loader, forward=net,
                     loss_fn=loss_fn, metric_fn=metric_fn, hooks=hooks, device=device)  # fmt: skip
    qmodel.eval()
    qmodel.__dict__["retrain_history"] = history_of(stats, time.perf_counter() - start)  # not a submodule
    return qmodel


def _frozen_epochs(epochs: int, freeze_bn_epochs: int | None) -> int:
    """The checked number of final epochs with frozen BN statistics (None: 1 when epochs >= 2, else 0)."""
    check_epochs(epochs)
    if freeze_bn_epochs is None:
        return 1 if epochs >= 2 else 0
    if isinstance(freeze_bn_epochs, bool) or not isinstance(freeze_bn_epochs, int):
        raise InputError(f"freeze_bn_epochs must be an int or None, got {freeze_bn_epochs!r}.")
    if not 0 <= freeze_bn_epochs <= epochs:
        raise InputError(f"freeze_bn_epochs must be in [0, epochs={epochs}], got {freeze_bn_epochs}.")
    return freeze_bn_epochs


@torch.no_grad()
def _reestimate_bn_(qmodel: nn.Module, loader: DataLoader, device: str | torch.device) -> None:
    """Recompute every BN's running statistics on the quantized network: a cumulative average over up to
    ``BN_REESTIMATE_BATCHES`` training batches, everything but BN (and FoldedConvBN, whose BN tracks its
    float conv's output) in eval mode, the loader's RNG restored."""
    from calibration import FoldedConvBN

    bns = [m for m in qmodel.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    bns = [m for m in bns if m.track_running_stats]
    momenta = [m.momentum for m in bns]
    gens = ckpt.loader_generators([loader])
    state = ckpt.rng_state(gens)
    qmodel.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
        m.train()
    for f in qmodel.modules():
        if isinstance(f, FoldedConvBN):
            f.train()
    try:
        for i, (x, _) in enumerate(loader):
            if i == BN_REESTIMATE_BATCHES:
                break
            qmodel(x.to(device))
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
        qmodel.eval()
        ckpt.set_rng_state(state, gens)


def _fold_for_qat(qmodel: nn.Module, loader: DataLoader, device: str | torch.device) -> nn.Module:
    """``calibration.fold_bn(qmodel, qat=True)`` (each conv -> BN pair becomes a FoldedConvBN), its BN
    statistics first re-estimated as the FoldedConvBNs track them, so the weight clips move into the fold
    domain with the re-estimated ``sigma``. ``qmodel``'s BN statistics are overwritten."""
    from calibration import FoldedConvBN, find_conv_bn, fold_bn

    try:
        pairs = find_conv_bn(qmodel)
        folded = fold_bn(qmodel, qat=True)
    except InputError as e:
        raise InputError(f"{e} Or retrain with BN unfolded: sdk.retrain(..., fold_bn=False).") from e
    _reestimate_bn_(folded, loader, device)
    source = {p.bn: f"{p.conv}.bn" for p in pairs if isinstance(folded.get_submodule(p.conv), FoldedConvBN)}
    for name, bn in qmodel.named_modules():
        if isinstance(bn, nn.modules.batchnorm._BatchNorm):
            bn.load_state_dict(folded.get_submodule(source.get(name, name)).state_dict())
    return fold_bn(qmodel, qat=True)


def _freeze_bn_stats(model: nn.Module) -> None:
    """BN layers normalise with (and stop updating) their running statistics; gamma and beta still train."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
