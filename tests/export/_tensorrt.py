"""The tensorrt/jetson artifact as the target lowers it, and as it was lowered before issue 13 (the target's
pass list without the TensorRT passes), for the conformance test to show the old artifacts break the rules."""

from __future__ import annotations

import onnx

import targets
from export.onnx_qdq import Traced
from export.options import LoweringOptions

#: the passes issue 13 added to the tensorrt/jetson lowering
TENSORRT_PASSES = ("float_bias", "float_clip", "tensorrt_check")


def lower_tensorrt(traced: Traced, target: str = "tensorrt") -> onnx.ModelProto:
    """The artifact the tensorrt (or jetson) target gets: its own pass list."""
    return traced.lower(LoweringOptions(targets.get(target).lowering))


def lower_old(traced: Traced, target: str = "tensorrt") -> onnx.ModelProto:
    """The artifact before the TensorRT passes: int8 containers, int32 bias, integer Clip between Q and DQ."""
    passes = tuple(p for p in targets.get(target).lowering if p not in TENSORRT_PASSES)
    return traced.lower(LoweringOptions(passes))
