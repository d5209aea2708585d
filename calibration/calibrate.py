"""Post-training calibration: set every quantizer's clip alpha from data instead of from the first batch."""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

from calibration._batches import iter_batches
from calibration.bn_fold import fold_bn, has_foldable_bn
from calibration.observers import CALIBRATORS, Observer, ObserverFactory, create_observer
from calibration.weights import WEIGHT_METHODS, calibrate_weights_
from sdk.config import FLOAT_BITS
from sdk.device import check_device
from sdk.errors import InputError
from sdk.quant.convert import is_quantized, quant_layers
from sdk.quant.quantizers import EPS, ActQuantizer, WeightQuantizer

__all__ = ["calibrate", "round_scales_to_power_of_two_", "ZERO_ALPHA"]

ZERO_ALPHA = 1e-3
"""alpha given to a quantizer that saw only zeros (ActQuantizer.init_from's floor)."""


def calibrate(
    qmodel: nn.Module,
    loader: Iterable[Any],
    *,
    method: str | ObserverFactory = "percentile",
    num_batches: int | None = None,
    weight_method: str = "minmax",
    power_of_two: bool = False,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> nn.Module:
    """A calibrated copy of the fake-quant ``qmodel`` (which is not modified), BN folded.

    Runs the model in eval mode with every quantizer bypassed (float activations, as TensorRT/torch.ao
    observe them), feeding each activation quantizer's input to an observer made by ``method`` (a registered
    name: ``calibration.CALIBRATORS.names()``, or a factory such as ``lambda: PercentileObserver(99.9)``).
    Each quantizer then becomes signed iff negative values were seen (the logits' ``out_quant`` stays signed),
    takes ``alpha = observer.qparams(bits, signed)`` and is marked initialized. Weight clips come from the
    weights themselves by ``weight_method`` (``"minmax"``, ``"mse"``, ``"reshape"``). With ``power_of_two``
    every scale is then rounded up to a power of two (``alpha = s * n``), as FPGA toolchains need.
    The copy keeps ``qmodel``'s train/eval mode and lives on ``device``.
    """
    if not isinstance(qmodel, nn.Module) or not is_quantized(qmodel):
        raise InputError(
            "calibrate needs a fake-quant model: call sdk.quantize(model, config) first, "
            "or calibration.ptq(model, config, loader) to do both."
        )
    if isinstance(method, str):
        CALIBRATORS.resolve(method)
    create_observer(method)  # fail on a bad factory before any work
    WEIGHT_METHODS.resolve(weight_method)
    model = fold_bn(qmodel) if has_foldable_bn(qmodel) else copy.deepcopy(qmodel)
    model.to(check_device(device))
    calibrate_weights_(model, weight_method)
    acts = [(n, q) for n, q in model.named_modules() if isinstance(q, ActQuantizer) and q.bits < FLOAT_BITS]
    observers = {n: create_observer(method) for n, _ in acts}
    _observe(model, dict(acts), observers, loader, num_batches=num_batches, device=device, progress=progress)
    outputs = {id(layer.out_quant) for _, layer in quant_layers(model) if layer.out_quant is not None}
    unseen = []
    with torch.no_grad():
        for name, q in acts:
            obs = observers[name]
            if obs.count == 0:
                unseen.append(name)
                continue
            q.signed = obs.has_negative or id(q) in outputs
            alpha = obs.qparams(q.bits, q.signed)
            q.alpha.fill_(alpha if alpha > 0 else ZERO_ALPHA)
            q.initialized.fill_(True)
    if unseen:
        warnings.warn(
            f"calibration data never reached quantizers {unseen[:5]}; they will initialise from the first "
            "batch they see at inference.",
            stacklevel=2,
        )
    if power_of_two:
        round_scales_to_power_of_two_(model)
    model.train(qmodel.training)
    return model


def _observe(
    model: nn.Module,
    quantizers: dict[str, ActQuantizer],
    observers: dict[str, Observer],
    loader: Iterable[Any],
    *,
    num_batches: int | None,
    device: str | torch.device,
    progress: bool,
) -> None:
    """Run ``loader`` through the float-bypassed ``model``, feeding each quantizer's input to its observer."""
    from tqdm.auto import tqdm

    def hook(name: str) -> Any:
        def pre(_: nn.Module, args: tuple[Any, ...]) -> None:
            try:
                observers[name].observe(args[0])
            except InputError as e:
                raise InputError(f"at quantizer {name!r}: {e}") from None

        return pre

    ndim = 4 if isinstance(quant_layers(model)[0][1], nn.Conv2d) else None
    handles = [q.register_forward_pre_hook(hook(n)) for n, q in quantizers.items()]
    try:
        with _bypassed(model), torch.no_grad():
            model.eval()
            batches = iter_batches(loader, num_batches=num_batches, ndim=ndim, device=device)
            for i, x in enumerate(tqdm(batches, disable=not progress, desc="calibrate", unit="batch")):
                try:
                    model(x)
                except (RuntimeError, ValueError, TypeError) as e:
                    if isinstance(e, InputError):
                        raise
                    raise InputError(
                        f"the model failed on calibration batch {i} of shape {tuple(x.shape)} "
                        f"({type(e).__name__}: {e}); does the data match the model's input?"
                    ) from e
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def _bypassed(model: nn.Module) -> Iterator[None]:
    """Temporarily set every quantizer to 32 bits (float pass-through), restoring the bits afterwards."""
    quantizers = [m for m in model.modules() if isinstance(m, (ActQuantizer, WeightQuantizer))]
    bits = [q.bits for q in quantizers]
    for q in quantizers:
        q.bits = FLOAT_BITS
    try:
        yield
    finally:
        for q, b in zip(quantizers, bits):
            q.bits = b


@torch.no_grad()
def round_scales_to_power_of_two_(qmodel: nn.Module) -> None:
    """Round every quantizer's scale ``|alpha| / n`` up to a power of two, in place (``alpha = s * n``).

    Rounding up never clips more than before. Changing bits afterwards (set_bits) breaks the property.
    """
    for m in qmodel.modules():
        if isinstance(m, (ActQuantizer, WeightQuantizer)) and m.bits < FLOAT_BITS:
            n = m.range[1] if isinstance(m, ActQuantizer) else m.levels
            s = m.alpha.abs().clamp_min(EPS) / n
            m.alpha.copy_(torch.exp2(torch.ceil(torch.log2(s))) * n)
