"""The tensorrt/jetson lowering as it will be wired: today's target lowering, then the TensorRT passes.

Until the targets declare their lowering as a list of pass names, the tests lower with this helper; the
lead's wiring replaces it (the pass order is the one ``TENSORRT_TAIL`` lists).
"""

from __future__ import annotations

import onnx

import targets
from export.lowering import finalize, lower
from export.onnx_qdq import Traced, metadata_for
from export.passes import FloatClip, Prune, run_passes
from export.passes.float_bias import FloatBias
from export.passes.tensorrt_check import TensorRTCheck

#: after the target's passes (int8 containers): float bias, float clip, then the conformance check
TENSORRT_TAIL = (FloatBias(), FloatClip(), Prune(), TensorRTCheck())


def lower_tensorrt(traced: Traced, target: str = "tensorrt") -> onnx.ModelProto:
    """The artifact the tensorrt (or jetson) target gets with the new passes."""
    options = targets.get(target).lowering
    model = lower(traced.graph, options, traced.layers)
    model = run_passes(model, TENSORRT_TAIL)
    return finalize(model, options.opset, metadata_for(traced.qmodel, options))


def lower_old(traced: Traced, target: str = "tensorrt") -> onnx.ModelProto:
    """Today's artifact for ``target`` (what main exports)."""
    return traced.lower(targets.get(target).lowering)
