"""ONNX QDQ export (DESIGN §4): ``to_onnx(qmodel, path, example_input, options=...)``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import onnx
import torch
from torch import nn

from export._fx_emit import Unsupported, emit
from export._standin import check_ready, fold_bn_if_needed
from export.lowering import QUANT_SCHEME, finalize, lower
from export.options import LoweringOptions
from export.passes.compact_graph import is_compact
from sdk.errors import InputError
from sdk.quant.convert import config_of, quant_layers

__all__ = ["to_onnx", "metadata_for", "Traced"]


class Traced:
    """A model traced once, lowerable for any number of LoweringOptions (the bundle exports all targets
    from one trace). The graph comes from the one QDQ front end, ``export._fx_emit``; a model using an op it
    has no emitter for is refused with an InputError naming the op.
    """

    def __init__(self, qmodel: nn.Module, example_input: torch.Tensor) -> None:
        if not isinstance(example_input, torch.Tensor) or example_input.dim() < 2:
            raise InputError(
                "example_input must be a float tensor shaped like one batch, e.g. (1, 3, 32, 32)."
            )
        if not example_input.is_floating_point():
            raise InputError(f"example_input must be a float tensor, got dtype {example_input.dtype}.")
        if not bool(torch.isfinite(example_input).all()):
            raise InputError(
                "example_input contains NaN or inf; pass a real or zero batch, e.g. torch.zeros(1, 3, 32, 32)"
            )
        check_ready(qmodel)  # first: a forward would initialise unset quantizers from this one batch
        was_training = qmodel.training
        try:
            qmodel.eval()
            with torch.no_grad():
                try:  # a wrong shape would otherwise fail deep inside the tracer, with its own traceback
                    qmodel(example_input)
                except (RuntimeError, ValueError) as e:
                    raise InputError(
                        f"the model cannot run example_input of shape {tuple(example_input.shape)}: {e}. "
                        "Pass one batch shaped as the model expects, e.g. (1, 3, 32, 32)."
                    ) from e
            self.qmodel = fold_bn_if_needed(qmodel).eval()
            self.graph = _emit(self.qmodel, example_input)
        finally:
            qmodel.train(was_training)  # the caller's model keeps its mode
        self.layers = tuple(name for name, _ in quant_layers(self.qmodel))

    def lower(self, options: LoweringOptions) -> onnx.ModelProto:
        model = lower(self.graph, options, self.layers)
        shapes = not is_compact(options.passes)
        return finalize(model, options.opset, metadata_for(self.qmodel, options), shapes=shapes)


def _emit(qmodel: nn.Module, example_input: torch.Tensor) -> onnx.ModelProto:
    try:
        return emit(qmodel, example_input)
    except Unsupported as e:
        raise InputError(
            f"the QDQ exporter cannot lower this model: {e}. Build the model from the ops export._fx_emit "
            "lists in MODULE_HANDLERS / CALL_HANDLERS (the zoo's layers, pooling, Add, flatten, cat)."
        ) from e


def metadata_for(qmodel: nn.Module, options: LoweringOptions) -> Mapping[str, Any]:
    import sdk

    meta = {
        "bpnas_version": sdk.__version__,
        "bpnas_config": config_of(qmodel).to_dict(),
        "bpnas_quant_scheme": QUANT_SCHEME,
        "bpnas_lowering": options.to_dict(),
    }
    if is_compact(options.passes):
        del meta["bpnas_config"]  # the bundle's manifest holds the config; the layer nodes its names and bits
    return meta


def to_onnx(
    qmodel: nn.Module,
    path: str | os.PathLike[str] | None,
    example_input: torch.Tensor,
    *,
    options: LoweringOptions = LoweringOptions(),  # noqa: B008 - frozen, so a shared default is safe
) -> onnx.ModelProto:
    """Export a fake-quant model as a QDQ ONNX graph that computes what it computes (DESIGN §2, §4).

    BatchNorm is folded first when it remains (``calibration.fold_bn``); activation quantizers must have
    seen data. ``options`` picks the target variant (containers, per-tensor, power-of-two, clip pattern).
    Writes ``path`` when given and returns the model.
    """
    model = Traced(qmodel, example_input).lower(options)
    if path is not None:
        onnx.save(model, os.fspath(path))
    return model
