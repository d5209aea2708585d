"""ONNX QDQ export (DESIGN §4): ``to_onnx(qmodel, path, example_input, options=...)``."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import onnx
import torch
from torch import nn

from export._fx_emit import Unsupported, emit
from export._trace import check_ready, fold_bn_if_needed, trace
from export.lowering import QUANT_SCHEME, finalize, lower
from export.options import LoweringOptions
from sdk.errors import InputError
from sdk.quant.convert import config_of, quant_layers

__all__ = ["to_onnx", "metadata_for", "Traced"]

_log = logging.getLogger(__name__)


class Traced:
    """A model traced once, lowerable for any number of LoweringOptions (the bundle exports all targets
    from one trace).

    ``tracer``: "auto" emits the graph with the torch.fx fast path and falls back to ``torch.onnx.export``
    (with export-time stand-ins) for models using ops it has no handler for; "fx" or "torch.onnx" force one.
    """

    def __init__(self, qmodel: nn.Module, example_input: torch.Tensor, *, tracer: str = "auto") -> None:
        if tracer not in ("auto", "fx", "torch.onnx"):
            raise InputError(f"tracer must be 'auto', 'fx' or 'torch.onnx', got {tracer!r}")
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
            self._trace(fold_bn_if_needed(qmodel).eval(), example_input, tracer)
        finally:
            qmodel.train(was_training)  # the caller's model keeps its mode
        self.layers = tuple(name for name, _ in quant_layers(self.qmodel))

    def _trace(self, qmodel: nn.Module, example_input: torch.Tensor, tracer: str) -> None:
        self.qmodel = qmodel
        self.tracer = tracer
        if tracer != "torch.onnx":
            try:
                self.graph = emit(qmodel, example_input)
                self.tracer = "fx"
            except Unsupported as e:
                if tracer == "fx":
                    raise InputError(f"the fx exporter cannot lower this model: {e}") from e
                _log.info("fx fast path unavailable (%s); using torch.onnx.export", e)
                self.tracer = "torch.onnx"
        if self.tracer == "torch.onnx":
            self.graph = trace(qmodel, example_input)

    def lower(self, options: LoweringOptions) -> onnx.ModelProto:
        model = lower(self.graph, options, self.layers)
        return finalize(model, options.opset, metadata_for(self.qmodel, options))


def metadata_for(qmodel: nn.Module, options: LoweringOptions) -> Mapping[str, Any]:
    import sdk

    return {
        "bpnas_version": sdk.__version__,
        "bpnas_config": config_of(qmodel).to_dict(),
        "bpnas_quant_scheme": QUANT_SCHEME,
        "bpnas_lowering": options.to_dict(),
    }


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
