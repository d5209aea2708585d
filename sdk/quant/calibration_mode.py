"""How a model calibrates its activation quantizers on a first batch: eval mode, except untrained BatchNorm.

Calibration runs in eval mode so BatchNorm normalises with the running statistics deployment uses. A
BatchNorm that has never been trained (its running statistics still exactly their initial 0 and 1) would
normalise nothing: a deep untrained net's eval-mode activations then shrink or grow layer by layer, clip
ranges land on their floor, and each BatchNorm after a clipped (near-constant) layer multiplies the gradient
by up to ``1/sqrt(eps)``: an untrained MobileNetV2 at 32x32 took a first supernet step with gradients of
6e21. Those layers normalise with the batch's statistics here, as training will, and their running
statistics are left as they were.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["calibration_mode"]


def _untrained(m: nn.Module) -> bool:
    """A BatchNorm whose running statistics are still exactly their initial 0 and 1 (``num_batches_tracked``
    is not the test: weights converted from elsewhere carry real statistics with a count of 0)."""
    if not isinstance(m, _BatchNorm) or m.running_mean is None or m.running_var is None:
        return False
    return bool(torch.all(m.running_mean == 0)) and bool(torch.all(m.running_var == 1))


@contextmanager
def calibration_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode without gradients, its untrained BatchNorm layers on batch statistics (their
    running statistics untouched); the previous modes come back on exit."""
    modes = {m: m.training for m in model.modules()}
    fresh = [m for m in model.modules() if _untrained(m)]
    saved = [{k: v.clone() for k, v in m.state_dict().items()} for m in fresh]
    model.eval()
    for m in fresh:
        m.train()
    try:
        with torch.no_grad():
            yield model
    finally:
        for m, state in zip(fresh, saved):
            m.load_state_dict(state)
        for m, training in modes.items():
            m.training = training
