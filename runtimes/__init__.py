"""Runtime adapters by name, imported lazily: registering or listing a runtime never imports an engine.

Each adapter is one file, ``runtimes/<engine>.py``, exposing a loader ``load(artifact, manifest, options) ->
Session`` (see :mod:`runtimes.base`). :data:`ADAPTERS` says where each named loader lives; :func:`get_runtime`
imports that module on first use. A module may also register itself with ``@register_runtime(name)``; a
registered loader wins over the table, which is how out-of-tree adapters plug in.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from runtimes.base import LayerPrecision, LayerTime, Loader, RuntimeOptions, Session
from sdk._registry import Registry
from sdk.errors import TargetUnavailable

__all__ = [
    "ADAPTERS",
    "LayerPrecision",
    "LayerTime",
    "Loader",
    "RuntimeOptions",
    "Session",
    "get_runtime",
    "register_runtime",
    "runtime_names",
]

#: runtime name -> "module:loader". Names are the ``Target.runtime`` fields.
ADAPTERS: dict[str, str] = {
    "onnxruntime": "runtimes.onnxruntime:load",
    "openvino": "runtimes.openvino:load",
    "tvm": "runtimes.tvm:load",
    "tensorrt": "runtimes.tensorrt:load",
    "jetson": "runtimes.tensorrt:load_jetson",
    "integer": "runtimes.integer:load",
}

_registry: Registry[Loader] = Registry("runtime", TargetUnavailable)


def register_runtime(name: str) -> Callable[[Loader], Loader]:
    """Decorator registering a loader under ``name``; a duplicate name raises."""
    return _registry.decorator(name)


def runtime_names() -> list[str]:
    """Every runtime name known from the table or registered, sorted."""
    return sorted({*ADAPTERS, *_registry.names()})


def get_runtime(name: str) -> Loader:
    """The loader for runtime ``name``, importing its adapter module on first use.

    Raises TargetUnavailable for an unknown name (with close matches) or when the adapter module is not part
    of this installation.
    """
    if name in _registry:
        return _registry.get(name)
    if name not in ADAPTERS:
        known = Registry[object]("runtime", TargetUnavailable)
        for n in runtime_names():
            known.register(n, n)
        known.resolve(name)  # raises with close matches
    module_name, _, attr = ADAPTERS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise  # the adapter exists but something it imports at module level is missing
        raise TargetUnavailable(
            f"runtime {name!r}: adapter module {module_name!r} is not part of this bpnas installation; "
            "upgrade bpnas or choose another target (targets.available())."
        ) from e
    if name in _registry:  # the module registered itself on import
        return _registry.get(name)
    loader = getattr(module, attr, None)
    if not callable(loader):
        raise TargetUnavailable(f"runtime {name!r}: {module_name} has no loader {attr!r}; upgrade bpnas.")
    return _registry.register(name, loader)
