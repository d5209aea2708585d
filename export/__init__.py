"""bpnas export: fake-quant model -> ONNX QDQ / QONNX artifacts -> a versioned bundle.

``import export`` stays torch-free: the exporters resolve on first use, like ``sdk``'s training names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from export.options import LoweringOptions

_LAZY: dict[str, tuple[str, str]] = {
    "export": ("export.bundle", "export"),
    "Bundle": ("export.bundle", "Bundle"),
    "to_onnx": ("export.onnx_qdq", "to_onnx"),
    "to_qonnx": ("export.qonnx_export", "to_qonnx"),
    "read_manifest": ("runtimes.bundle", "read_manifest"),
    "Manifest": ("runtimes.bundle", "Manifest"),
}

__all__ = ["Bundle", "LoweringOptions", "Manifest", "export", "read_manifest", "to_onnx", "to_qonnx"]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'export' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover
    from export.bundle import Bundle, export
    from export.onnx_qdq import to_onnx
    from export.qonnx_export import to_qonnx
    from runtimes.bundle import Manifest, read_manifest
