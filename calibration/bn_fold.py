"""Fold every BatchNorm2d that directly follows a conv into the conv (DESIGN §2), found with torch.fx.

``W' = W * g/sigma``, ``b' = (b - mu) * g/sigma + beta`` from the running statistics (eval semantics); the BN
becomes ``nn.Identity`` so module names, and hence MixedPrecisionConfig layer names, do not change.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass

import torch
from torch import fx, nn

from calibration._fold_math import fold_conv_bn_params, rescale_weight_alpha_
from calibration.qat_fold import FoldedConvBN
from sdk.errors import InputError
from sdk.quant.modules import QuantAdd, QuantConv2d, QuantLinear
from sdk.quant.quantizers import ActQuantizer, WeightQuantizer

__all__ = ["QuantTracer", "ConvBN", "trace", "find_conv_bn", "fold_conv_bn", "fold_bn", "has_foldable_bn"]

LEAF_TYPES: tuple[type[nn.Module], ...] = (QuantConv2d, QuantLinear, QuantAdd, ActQuantizer, WeightQuantizer)


class QuantTracer(fx.Tracer):
    """An fx tracer that never traces into bpnas quant modules (their forward has data-dependent init)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, LEAF_TYPES) or super().is_leaf_module(m, module_qualified_name)


@dataclass(frozen=True)
class ConvBN:
    """Qualified names of a conv and the BatchNorm2d that is the only consumer of its output."""

    conv: str
    bn: str


def trace(model: nn.Module) -> fx.Graph:
    """The fx graph of ``model`` with quant modules as leaves; InputError if the forward is not traceable."""
    if not isinstance(model, nn.Module):
        raise InputError(f"expected a torch.nn.Module, got {type(model).__name__}.")
    try:
        return QuantTracer().trace(model)
    except Exception as e:  # fx raises TraceError, TypeError, RuntimeError, ... depending on the construct
        raise InputError(
            f"BN folding could not trace {type(model).__name__} with torch.fx ({type(e).__name__}: {e}). "
            "Make its forward traceable (no control flow on tensor values), or fold pairs yourself with "
            "calibration.fold_conv_bn(conv, bn)."
        ) from e


def find_conv_bn(model: nn.Module) -> list[ConvBN]:
    """Every (conv, BN) pair where the conv's output feeds only that BN, each module called exactly once.

    Skipped: shared (reused) modules, BN without running statistics, channel mismatches, and convs with an
    output quantizer (the BN would move across the quantizer).
    """
    graph = trace(model)
    modules = dict(model.named_modules())
    calls = Counter(n.target for n in graph.nodes if n.op == "call_module")
    pairs = []
    for node in graph.nodes:
        bn = modules.get(node.target) if node.op == "call_module" else None  # type: ignore[arg-type]
        if (
            not isinstance(bn, nn.BatchNorm2d)
            or calls[node.target] != 1
            or len(node.args) != 1
            or node.kwargs
        ):
            continue
        src = node.args[0]
        if not isinstance(src, fx.Node) or src.op != "call_module" or len(src.users) != 1:
            continue
        conv = modules.get(src.target)  # type: ignore[arg-type]
        if not isinstance(conv, nn.Conv2d) or isinstance(conv, FoldedConvBN) or calls[src.target] != 1:
            continue
        if isinstance(conv, QuantConv2d) and conv.out_quant is not None:
            continue
        if bn.running_var is None or bn.num_features != conv.out_channels:
            continue
        pairs.append(ConvBN(str(src.target), str(node.target)))
    return pairs


def has_foldable_bn(model: nn.Module) -> bool:
    """True when ``fold_bn`` would change ``model``: a foldable BN or an unfrozen ``FoldedConvBN`` remains."""
    return any(isinstance(m, FoldedConvBN) for m in model.modules()) or (
        any(isinstance(m, nn.BatchNorm2d) for m in model.modules()) and bool(find_conv_bn(model))
    )


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A copy of ``conv`` with ``bn`` folded in (bias created if absent); a QuantConv2d's alpha follows."""
    if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.BatchNorm2d):
        raise InputError(
            f"fold_conv_bn needs (Conv2d, BatchNorm2d), got ({type(conv).__name__}, {type(bn).__name__})."
        )
    if bn.running_var is None or bn.num_features != conv.out_channels:
        raise InputError(
            f"cannot fold BatchNorm2d({bn.num_features}, track_running_stats={bn.track_running_stats}) "
            f"into a conv with {conv.out_channels} output channels; folding needs running statistics "
            "and equal channels."
        )
    new = conv.freeze() if isinstance(conv, FoldedConvBN) else copy.deepcopy(conv)
    _fold_into_(new, bn)
    return new


@torch.no_grad()
def _fold_into_(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    w, b, scale = fold_conv_bn_params(conv.weight, conv.bias, bn)
    conv.weight.copy_(w)
    if conv.bias is None:
        conv.bias = nn.Parameter(b)
    else:
        conv.bias.copy_(b)
    if isinstance(conv, QuantConv2d):
        rescale_weight_alpha_(conv.weight_quant, scale, w)


def fold_bn(model: nn.Module, *, qat: bool = False) -> nn.Module:
    """A new model with every BN that directly follows a conv folded in and replaced by ``nn.Identity``.

    With ``qat=True`` each such QuantConv2d becomes a ``FoldedConvBN`` (BN kept live for quantization-aware
    training; plain float convs are left alone); ``fold_bn`` on that model later freezes them to the plain
    folded form. ``model`` itself is not modified.
    """
    if not isinstance(model, nn.Module):
        raise InputError(f"fold_bn needs a torch.nn.Module, got {type(model).__name__}.")
    new = copy.deepcopy(model)
    if not qat:
        for name, m in list(new.named_modules()):
            if isinstance(m, FoldedConvBN):
                _set_child(new, name, m.freeze())
    for pair in find_conv_bn(new):
        conv, bn = new.get_submodule(pair.conv), new.get_submodule(pair.bn)
        assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
        if qat:
            if not isinstance(conv, QuantConv2d):
                continue
            folded: nn.Module = FoldedConvBN.from_pair(conv, bn)
            folded.train(conv.training)
            _set_child(new, pair.conv, folded)
        else:
            _fold_into_(conv, bn)  # ``new`` is already a private copy
        _set_child(new, pair.bn, nn.Identity())
    return new


def _set_child(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)
