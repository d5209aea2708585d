"""Per-task postprocessing: what a Predictor makes of a session's named outputs, looked up by the bundle
manifest's ``task``. A new task (detection) registers its step here and needs no adapter change.

    >>> @register_postprocess("classify")
    ... def classify(outputs, manifest): return outputs[manifest.output.name]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from runtimes.bundle import Manifest
from sdk._registry import Registry
from sdk.errors import BundleError

__all__ = ["Postprocess", "postprocess_step", "register_postprocess", "task_names"]

#: outputs of one batch (every named output, batch first) and the bundle's manifest -> the user's result
Postprocess = Callable[[Mapping[str, np.ndarray], Manifest], Any]

_registry: Registry[Postprocess] = Registry("task", BundleError)


def register_postprocess(task: str) -> Callable[[Postprocess], Postprocess]:
    """Decorator registering the postprocessing step of ``task``; a duplicate name raises."""
    return _registry.decorator(task)


def task_names() -> list[str]:
    """Every task a bundle may name, sorted."""
    return _registry.names()


def postprocess_step(task: str) -> Postprocess:
    """The step for ``task``; raises BundleError (with close matches) for a task this bpnas does not know."""
    try:
        return _registry.get(task)
    except BundleError as e:
        raise BundleError(f"the bundle's {e} Upgrade bpnas, or re-export the bundle.") from None


@register_postprocess("classify")
def classify(outputs: Mapping[str, np.ndarray], manifest: Manifest) -> np.ndarray:
    """Logits, float32 (N, classes): the manifest's output, as the engine returned it."""
    logits = outputs[manifest.output.name]
    if logits.ndim != 2:
        raise BundleError(f"the engine returned logits shaped {logits.shape}, not (N, classes); re-export.")
    return logits
