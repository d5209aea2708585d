"""QONNX export (FINN / hls4ml toolchains): ``to_qonnx(qmodel, path, example_input)``.

Same trace and clean-up as the QDQ artifact, then every quantizer becomes one QONNX ``Quant`` node (see
``export.passes.qonnx_quant`` for the exact semantics: rounding_mode "ROUND" is numpy's round half to
even, the spec's rounding). Float ops (Relu, pooling, Add) stay standard ONNX.
"""

from __future__ import annotations

import os

import onnx
import torch
from torch import nn

from export.lowering import cleanup_passes, finalize
from export.onnx_qdq import Traced, metadata_for
from export.options import LoweringOptions
from export.passes import DropFullRangeClip, MergeClips, Prune, run_passes
from export.passes.qonnx_quant import QdqToQuant
from sdk.quant.convert import quant_layers

__all__ = ["to_qonnx", "QONNX_SCHEME", "lower_qonnx"]

QONNX_SCHEME = "bpnas-qonnx-v1"


def lower_qonnx(traced: Traced, *, opset: int = 17) -> onnx.ModelProto:
    """The QONNX model of an already traced model."""
    model = onnx.ModelProto()
    model.CopyFrom(traced.graph)
    del model.graph.value_info[:]
    w_bits = {name: int(layer.bits[0]) for name, layer in quant_layers(traced.qmodel)}
    model = run_passes(model, [*cleanup_passes(traced.layers), MergeClips(), DropFullRangeClip(), Prune()])
    model = run_passes(model, [QdqToQuant(w_bits), Prune()])
    meta = dict(metadata_for(traced.qmodel, LoweringOptions(opset=opset)))
    meta["bpnas_quant_scheme"] = QONNX_SCHEME
    return finalize(model, opset, meta)


def to_qonnx(
    qmodel: nn.Module, path: str | os.PathLike[str] | None, example_input: torch.Tensor, *, opset: int = 17
) -> onnx.ModelProto:
    """Export a fake-quant model as QONNX (``Quant`` nodes); writes ``path`` when given, returns the model."""
    model = lower_qonnx(Traced(qmodel, example_input), opset=opset)
    if path is not None:
        onnx.save(model, os.fspath(path))
    return model
