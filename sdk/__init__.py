"""bpnas: mixed-precision quantization search (BP-NAS) and edge deployment for CNNs.

Only torch-free names are imported eagerly; training names (quantize, search, models, ...) resolve on first
use, so ``import sdk; sdk.load(...).predict(...)`` never imports torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sdk.config import MixedPrecisionConfig
from sdk.cost import BopsReport, LayerCost
from sdk.errors import BpnasError, BudgetInfeasible, BundleError, ConfigError, InputError, TargetUnavailable

__version__ = "0.1.0"

# public name -> (module, attribute or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "models": ("sdk.models", None),
    "data": ("sdk.data", None),
    "quant": ("sdk.quant", None),
    "quantize": ("sdk.quant", "quantize"),
    "bops": ("sdk.counting", "bops"),
    "train": ("sdk.training", "train"),
    "evaluate": ("sdk.evaluation", "evaluate"),
    "Detections": ("sdk.detection.boxes", "Detections"),
    "search": ("sdk.nas", "search"),
    "SearchResult": ("sdk.nas", "SearchResult"),
    "retrain": ("sdk.nas", "retrain"),
    "export": ("export", "export"),
    "Preprocess": ("sdk.preprocess", "Preprocess"),
    "load": ("sdk.predictor", "load"),
    "Predictor": ("sdk.predictor", "Predictor"),
    "LatencyReport": ("sdk.predictor", "LatencyReport"),
    "profile": ("sdk.predictor", "profile"),
    "classify": ("sdk.classify", "classify"),
    "Classification": ("sdk.classify", "Classification"),
}

__all__ = [
    "BopsReport",
    "BpnasError",
    "BudgetInfeasible",
    "BundleError",
    "ConfigError",
    "InputError",
    "LayerCost",
    "MixedPrecisionConfig",
    "TargetUnavailable",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'sdk' has no attribute {name!r}") from None
    mod = importlib.import_module(module)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from export import export  # noqa: F401
    from sdk import data, models, quant  # noqa: F401
    from sdk.classify import Classification, classify  # noqa: F401
    from sdk.counting import bops  # noqa: F401
    from sdk.detection.boxes import Detections  # noqa: F401
    from sdk.evaluation import evaluate  # noqa: F401
    from sdk.nas import SearchResult, retrain, search  # noqa: F401
    from sdk.predictor import LatencyReport, Predictor, load, profile  # noqa: F401
    from sdk.preprocess import Preprocess  # noqa: F401
    from sdk.quant import quantize  # noqa: F401
    from sdk.training import train  # noqa: F401
