"""Lowering passes by name, and the rules a target's pass list must follow.

A target declares its lowering as an ordered tuple of pass names (``targets/<name>.py``, torch- and
onnx-free). Each pass file registers its name here with :func:`register_pass`, saying which stage it runs in
and how it orders against the others; :func:`check_lowering` validates a list against those declarations and
:func:`lowering_phases` turns it into the pass lists :func:`export.lowering.lower` runs. A new pass file in
``export/passes/`` is found without editing any list (modules are discovered on first lookup).

Stages: ``"graph"`` passes normalise and re-encode the QDQ graph and run together to a fixed point after the
fixed clean-up (constants, identities, layer names, I/O contract); ``"engine"`` passes make engine-specific
rewrites and checks that must see that settled graph, and run to a fixed point after them. Each stage ends
with :class:`~export.passes.prune.Prune`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from export.passes.base import Pass
from sdk._registry import Registry
from sdk.errors import InputError

__all__ = [
    "STAGES",
    "PassSpec",
    "check_lowering",
    "lowering_phases",
    "pass_names",
    "pass_spec",
    "register_pass",
]

STAGES = ("graph", "engine")


@dataclass(frozen=True)
class PassSpec:
    """What a pass name means and how it orders against the others.

    Attributes:
        name: the name targets list ("merge_clips").
        make: builds the pass object (a class, or a function for a parametrised one).
        stage: "graph" or "engine" (see the module docstring); every graph pass precedes every engine pass.
        after: passes that, when listed too, must come earlier in the list.
        requires: passes that must be listed too.
        excludes: passes that must not be listed with it.
    """

    name: str
    make: Callable[[], Pass]
    stage: str
    after: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"pass {self.name!r}: stage must be one of {STAGES}, got {self.stage!r}")


_registry: Registry[PassSpec] = Registry("lowering pass", InputError)
_discovered = False


def register_pass(
    name: str,
    make: Callable[[], Pass],
    *,
    stage: str,
    after: Sequence[str] = (),
    requires: Sequence[str] = (),
    excludes: Sequence[str] = (),
) -> PassSpec:
    """Register pass ``name`` (called once at the bottom of its pass file); a duplicate name raises."""
    spec = PassSpec(name, make, stage, tuple(after), tuple(requires), tuple(excludes))
    return _registry.register(name, spec)


def _discover() -> None:
    """Import every module of ``export.passes`` once, so each pass file has registered its names."""
    global _discovered
    if _discovered:
        return
    import export.passes as package

    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}")
    _discovered = True


def pass_spec(name: str) -> PassSpec:
    """The registered pass ``name``; InputError with close matches when unknown."""
    _discover()
    return _registry.get(name)


def pass_names() -> list[str]:
    """Every registered pass name, sorted."""
    _discover()
    return _registry.names()


def check_lowering(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` as a tuple once every rule holds; InputError naming the broken rule otherwise."""
    listed = tuple(names)
    if len(set(listed)) != len(listed):
        raise InputError(f"lowering {listed} names a pass twice; list each pass once.")
    specs = [pass_spec(n) for n in listed]
    at = {n: i for i, n in enumerate(listed)}
    seen_engine = None
    for spec in specs:
        if spec.stage == "engine":
            seen_engine = seen_engine or spec.name
        elif seen_engine is not None:
            raise InputError(
                f"lowering pass {spec.name!r} (stage graph) is listed after {seen_engine!r} (stage engine); "
                "list every graph pass before the engine passes."
            )
        for other in spec.requires:
            if other not in at:
                raise InputError(f"lowering pass {spec.name!r} needs {other!r} in the list too; add it.")
        for other in spec.excludes:
            if other in at:
                raise InputError(f"lowering passes {spec.name!r} and {other!r} exclude each other; keep one.")
        for other in spec.after:
            if other in at and at[other] > at[spec.name]:
                raise InputError(
                    f"lowering pass {spec.name!r} must come after {other!r}; move it later in the list."
                )
    return listed


def lowering_phases(names: Sequence[str]) -> tuple[list[Pass], list[Pass]]:
    """The listed passes built and split by stage (graph, engine), in list order, after validation."""
    specs = [pass_spec(n) for n in check_lowering(names)]
    graph = [s.make() for s in specs if s.stage == "graph"]
    engine = [s.make() for s in specs if s.stage == "engine"]
    return graph, engine
