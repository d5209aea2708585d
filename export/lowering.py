"""The pass lists that turn a traced QDQ graph into a target's artifact (torch-free).

``lower(model, options, layers)`` runs :func:`qdq_passes` to a fixed point, then :func:`finalize` sets the
opset and the metadata DESIGN §4 asks for. One traced graph can be lowered for several targets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import onnx

from export._graph import onnx_opset
from export.options import LoweringOptions
from export.passes import (
    ActivationContainers,
    CodeArithmetic,
    ConstantsToInitializers,
    DedupeQuantizers,
    DropFullRangeClip,
    FloatClip,
    FoldActivationIntoQuantize,
    IntegerOps,
    IoContract,
    MergeClips,
    NameLayers,
    Pass,
    PerTensorWeights,
    PowerOfTwoCheck,
    Prune,
    QuantizeBeforeMaxPool,
    RemoveIdentity,
    SliceStridedPointwise,
    SplitAddPerQuantizer,
    SplitConvPerQuantizer,
    SplitMaxPoolPerQuantizer,
    run_passes,
)

__all__ = ["QUANT_SCHEME", "TRACE_OPSET", "qdq_phases", "lower", "finalize"]

QUANT_SCHEME = "bpnas-qdq-v1"
TRACE_OPSET = 18  # what the torch exporter emits; finalize converts to options.opset


def cleanup_passes(layers: Sequence[str]) -> list[Pass]:
    """Target-independent clean-up: constants, identities, layer names, the I/O contract."""
    return [ConstantsToInitializers(), RemoveIdentity(), NameLayers(tuple(layers)), IoContract()]


def qdq_phases(options: LoweringOptions, layers: Sequence[str]) -> list[list[Pass]]:
    """The pass lists for one LoweringOptions; each runs to a fixed point before the next starts.

    Phase 1 normalises and re-encodes the QDQ graph; phase 2 makes engine-specific choices (explicit integer
    ops, the float-clip pattern, scale checks) that must see the settled graph.
    """
    passes = cleanup_passes(layers)
    if options.clip_pattern != "float_clip":
        passes.append(FoldActivationIntoQuantize())
    passes += [MergeClips(), DropFullRangeClip(), DedupeQuantizers()]
    if options.split_shared_pool:  # before QuantizeBeforeMaxPool, which needs a pool with one quantizer
        passes.append(SplitMaxPoolPerQuantizer())
    if options.quantize_before_maxpool or options.split_shared_pool:
        passes.append(QuantizeBeforeMaxPool())
    if options.split_shared_pool:  # after FoldActivationIntoQuantize left the conv reading the quantizers
        passes.append(SplitConvPerQuantizer())
    if not options.per_channel:
        passes.append(PerTensorWeights())
    if options.symmetric_int8:
        passes.append(ActivationContainers("int8"))
    elif options.uint8_activations:
        passes.append(ActivationContainers("uint8"))
    passes.append(Prune())
    engine: list[Pass] = []
    if options.explicit_integer_ops:
        engine.append(IntegerOps())
    if options.code_arithmetic:
        engine.append(CodeArithmetic())
    if options.clip_pattern != "qcdq":  # before a Slice reads the codes, while the QCDQ is still closed
        engine.append(FloatClip(signed_only=options.clip_pattern == "signed_float_clip"))
    if options.slice_strided_pointwise:
        engine.append(SliceStridedPointwise())
    if options.split_shared_add:
        engine.append(SplitAddPerQuantizer())
    if options.power_of_two_scales:
        engine.append(PowerOfTwoCheck())
    engine.append(Prune())
    return [passes, engine]


def lower(model: onnx.ModelProto, options: LoweringOptions, layers: Sequence[str]) -> onnx.ModelProto:
    """A lowered copy of the traced ``model`` (left untouched)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.value_info[:]  # passes change tensor types; engines infer shapes themselves
    for passes in qdq_phases(options, layers):
        out = run_passes(out, passes)
    return out


def finalize(model: onnx.ModelProto, opset: int, metadata: Mapping[str, Any]) -> onnx.ModelProto:
    """Convert to ``opset``, write ``metadata`` (values JSON-encoded unless str) and check the model."""
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
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    onnx.checker.check_model(model)
    return model
