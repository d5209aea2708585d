"""The pass protocol and the fixed-point runner every lowering uses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import onnx

from export._graph import toposort

__all__ = ["Pass", "run_passes", "PassesDidNotConverge"]


@runtime_checkable
class Pass(Protocol):
    """One graph rewrite. ``apply`` may edit ``model`` in place; it returns the model and whether it changed.

    Check passes (they only raise) always return ``changed=False``.
    """

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]: ...


class PassesDidNotConverge(RuntimeError):
    """The passes kept changing the graph: two of them undo each other (a bug in the pass list)."""


def run_passes(model: onnx.ModelProto, passes: Sequence[Pass], *, max_rounds: int = 20) -> onnx.ModelProto:
    """Apply ``passes`` in order, round after round, until a whole round changes nothing."""
    for _ in range(max_rounds):
        changed_by = []
        for p in passes:
            model, changed = p.apply(model)
            if changed:
                toposort(model)
                changed_by.append(type(p).__name__)
        if not changed_by:
            return model
    raise PassesDidNotConverge(
        f"lowering passes still changing the graph after {max_rounds} rounds: {changed_by}"
    )
