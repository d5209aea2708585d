"""Runtime adapters by name, imported lazily: listing a runtime never imports an engine.

An engine is two files: ``targets/<name>.py`` (data, whose ``runtime`` field names the adapter) and
``runtimes/<runtime>.py`` (the adapter), a module exposing ``load(artifact, manifest, options) -> Session``
(see :mod:`runtimes.base`). :func:`get_runtime` finds a built-in adapter by its module name, with no table to
edit. An adapter that lives outside this package (a plug-in, a test) registers its loader with
``@register_runtime(name)``; a registered name takes precedence over a module of the same name.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from runtimes.base import LayerPrecision, LayerTime, Loader, RuntimeOptions, Session
from sdk._registry import Registry
from sdk.errors import TargetUnavailable

__all__ = [
    "LayerPrecision",
    "LayerTime",
    "Loader",
    "RuntimeOptions",
    "Session",
    "get_runtime",
    "register_runtime",
    "runtime_names",
]

_registry: Registry[Loader] = Registry("runtime", TargetUnavailable)


def register_runtime(name: str) -> Callable[[Loader], Loader]:
    """Decorator registering an out-of-tree loader under ``name``; a duplicate name raises."""
    return _registry.decorator(name)


def _adapter_modules() -> list[str]:
    """The built-in adapter modules: every public module of this package but ``base`` (found, not listed)."""
    return [m.name for m in pkgutil.iter_modules(__path__) if m.name != "base" and not m.name.startswith("_")]


def runtime_names() -> list[str]:
    """Every runtime name: the built-in adapter modules and the registered loaders, sorted."""
    return sorted({*_adapter_modules(), *_registry.names()})


def get_runtime(name: str) -> Loader:
    """The loader for runtime ``name``: a registered one, else ``runtimes.<name>.load`` imported on first use.

    Raises TargetUnavailable for an unknown name (with close matches) or an adapter without a ``load``.
    """
    if name in _registry:
        return _registry.get(name)
    module_name = f"{__name__}.{name}"
    if not isinstance(name, str) or name not in _adapter_modules():
        known = Registry[object]("runtime", TargetUnavailable)
        for n in runtime_names():
            known.register(n, n)
        known.resolve(name)  # raises with close matches
        raise TargetUnavailable(f"runtime {name!r} has no adapter module {module_name!r}.")
    loader = getattr(importlib.import_module(module_name), "load", None)
    if not callable(loader):
        raise TargetUnavailable(f"runtime {name!r}: {module_name} has no loader 'load'; upgrade bpnas.")
    return loader
