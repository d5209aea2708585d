"""The pass lists that turn a traced QDQ graph into a target's artifact (torch-free).

``lower(model, options, layers)`` runs the passes of :func:`qdq_phases`, each phase to a fixed point, then
:func:`finalize` sets the opset and the metadata DESIGN §4 asks for. One traced graph can be lowered for
several targets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import onnx

from export._graph import onnx_opset
from export.options import LoweringOptions
from export.passes import (
    ConstantsToInitializers,
    IoContract,
    NameLayers,
    Pass,
    Prune,
    RemoveIdentity,
    run_passes,
)
from export.passes.registry import lowering_phases
from runtimes.bundle import QUANT_SCHEME

__all__ = ["QUANT_SCHEME", "TRACE_OPSET", "qdq_phases", "lower", "finalize"]

TRACE_OPSET = 18  # what the torch exporter emits; finalize converts to options.opset


def cleanup_passes(layers: Sequence[str]) -> list[Pass]:
    """Target-independent clean-up: constants, identities, layer names, the I/O contract."""
    return [ConstantsToInitializers(), RemoveIdentity(), NameLayers(tuple(layers)), IoContract()]


def qdq_phases(options: LoweringOptions, layers: Sequence[str]) -> list[list[Pass]]:
    """The pass lists for one LoweringOptions; each runs to a fixed point before the next starts.

    Phase 1 is the clean-up then the listed "graph" passes, which normalise and re-encode the QDQ graph;
    phase 2 the listed "engine" passes (explicit integer ops, float clips, scale checks), which must see the
    settled graph. Each ends with Prune. Which pass runs in which phase, and in what order, is the target's
    list, checked against each pass's declared rules (``export.passes.registry``).
    """
    graph, engine = lowering_phases(options.passes)
    return [[*cleanup_passes(layers), *graph, Prune()], [*engine, Prune()]]


def lower(model: onnx.ModelProto, options: LoweringOptions, layers: Sequence[str]) -> onnx.ModelProto:
    """A lowered copy of the traced ``model`` (left untouched)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.value_info[:]  # passes change tensor types; engines infer shapes themselves
    for passes in qdq_phases(options, layers):
        out = run_passes(out, passes)
    return out


def finalize(
    model: onnx.ModelProto, opset: int, metadata: Mapping[str, Any], *, shapes: bool = True
) -> onnx.ModelProto:
    """Convert to ``opset``, write ``metadata`` (values JSON-encoded unless str) and check the model.

    ``shapes=False`` drops the shape annotations (``value_info``) the opset converter infers: the compact
    integer artifact goes without them (``export.passes.compact_graph``).
    """
    current = onnx_opset(model)
    if opset != current:
        for (
            n
        ) in model.graph.node:  # the 18 -> 17 adapter keeps this default-valued attribute ReduceMean-13 lacks
            if n.op_type.startswith("Reduce") and opset < 18:
                keep = [a for a in n.attribute if not (a.name == "noop_with_empty_axes" and a.i == 0)]
                del n.attribute[:]
                n.attribute.extend(keep)
        from onnx import version_converter

        ir = model.ir_version
        model = version_converter.convert_version(model, opset)
        model.ir_version = min(ir, model.ir_version) if model.ir_version else ir
    if not shapes:
        del model.graph.value_info[:]
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    onnx.checker.check_model(model)
    return model
