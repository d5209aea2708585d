"""Deployment targets by name. Torch-free and engine-free: listing targets imports no engine.

    >>> import targets
    >>> targets.names()          # every registered target, installed or not
    >>> targets.available()      # those whose engine imports (and whose hardware is present) here
    >>> targets.get("fpga")      # aliases: "fpga" = "integer", "x86" = the best installed CPU engine

Each target lives in its own small file (``targets/openvino.py``) that builds a :class:`Target` and registers
it with :func:`register_target`. Every module of this package is imported here (discovered, not listed), so
a new target is one new file. A target defined elsewhere (a plug-in, a test) registers the same way.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable

from sdk.errors import TargetUnavailable
from targets.base import CostModel, Target, register_target, registry

__all__ = [
    "CostModel",
    "Target",
    "X86_PREFERENCE",
    "aliases",
    "available",
    "get",
    "names",
    "register_target",
    "resolve",
    "unavailable",
]

for _module in pkgutil.iter_modules(__path__):  # each target file registers its target on import
    if _module.name != "base" and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

#: CPU engines for the "x86" alias, best first. Measured (examples/bench_deploy.py, ResNet-18 224x224, one
#: QDQ int8 model, 2 threads): OpenVINO ran it >10x faster than ONNX Runtime. TVM comes last because it
#: compiles at load. ONNX Runtime is a core dependency, so the alias always resolves.
X86_PREFERENCE = ("openvino", "onnxruntime", "tvm")

registry.alias("x86", "onnxruntime")  # static fallback; resolve() picks the best installed CPU engine


def names() -> list[str]:
    """Every registered target name (aliases excluded), sorted."""
    return registry.names()


def aliases() -> dict[str, str]:
    """Alias -> target name. "x86" is shown with its static fallback; :func:`resolve` picks dynamically."""
    return registry.aliases()


def available(*, any_scales: bool = False) -> list[str]:
    """Registered targets whose engine is importable and whose hardware requirements hold here.
    ``any_scales=True`` keeps only those that take a calibrated model's arbitrary float scales (it drops
    targets needing power-of-two scales, e.g. hls4ml: docs/fpga.md)."""
    found = [n for n in names() if registry.get(n).available()]
    return [n for n in found if not registry.get(n).power_of_two_scales] if any_scales else found


def unavailable() -> dict[str, str]:
    """Target name -> why it cannot run here (with the pip extra to install)."""
    out = {}
    for n in names():
        reason = registry.get(n).unavailable_reason()
        if reason is not None:
            out[n] = reason
    return out


def resolve(name: str, *, among: Iterable[str] | None = None) -> Target:
    """The target ``name`` names, aliases followed; unknown names raise TargetUnavailable with close matches.

    "x86" picks the first of :data:`X86_PREFERENCE` that is available here and, when ``among`` is given (the
    targets a bundle carries), one of those.
    """
    if isinstance(name, str) and name.casefold() == "x86":  # names are case-insensitive
        allowed = None if among is None else set(among)
        for cand in X86_PREFERENCE:
            if (allowed is None or cand in allowed) and registry.get(cand).available():
                return registry.get(cand)
        carried = "" if allowed is None else f" among the bundle's targets {sorted(allowed)}"
        raise TargetUnavailable(
            f"alias 'x86' found no installed CPU engine{carried}; tried {', '.join(X86_PREFERENCE)}. "
            "Install one (`pip install 'bpnas[openvino]'`) or export for 'onnxruntime'."
        )
    return registry.get(name)


def get(name: str) -> Target:
    """The registered target for ``name`` (alias or canonical), whether or not its engine is installed."""
    return resolve(name)
