"""sdk.bops (module sdk.counting): count per-layer MACs with one traced forward pass, then apply sdk.cost."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from sdk.config import MixedPrecisionConfig
from sdk.cost import BopsReport, report_from_layers
from sdk.errors import InputError
from sdk.quant.convert import config_of, is_quantized
from sdk.quant.layers import quantizable_layers

__all__ = ["bops", "layer_shapes"]

LayerShape = tuple[str, int, int, str]


def _conv_macs(m: nn.Conv2d, out: torch.Tensor) -> int:
    kh, kw = m.kernel_size
    per_out = (m.in_channels // m.groups) * kh * kw
    return int(out[0].numel()) * per_out


def _linear_macs(m: nn.Linear, out: torch.Tensor) -> int:
    return int(out[0].numel()) * m.in_features


def layer_shapes(model: nn.Module, input_shape: Sequence[int]) -> list[LayerShape]:
    """(name, MACs per sample, weight params, op) for every Conv2d/Linear, from one forward at batch 1."""
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if len(shape) < 2 or any(s <= 0 for s in shape):
        raise InputError(f"input_shape must be positive ints like (1, 3, 32, 32), got {input_shape!r}.")
    layers = quantizable_layers(model)
    macs: dict[str, int] = {}
    hooks = []
    for name, m in layers:

        def hook(mod: nn.Module, _inp: Any, out: torch.Tensor, name: str = name) -> None:
            fn = _conv_macs if isinstance(mod, nn.Conv2d) else _linear_macs
            macs[name] = macs.get(name, 0) + fn(mod, out)  # type: ignore[arg-type]

        hooks.append(m.register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()
        p = next(model.parameters(), None)
        x = torch.zeros((1, *shape[1:]), device=p.device if p is not None else None)
        with torch.no_grad():
            try:
                model(x)
            except (RuntimeError, ValueError) as e:  # shape mismatches surface as either
                msg = f"model failed on input_shape {shape}: {e}. Pass the shape the model expects."
                raise InputError(msg) from e
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    rows = []
    for name, m in layers:
        op = "linear" if isinstance(m, nn.Linear) else ("dwconv" if getattr(m, "groups", 1) > 1 else "conv")
        weight = m.weight
        assert isinstance(weight, torch.Tensor)
        rows.append((name, macs.get(name, 0), int(weight.numel()), op))
    return rows


def bops(
    model: nn.Module,
    config: MixedPrecisionConfig | Mapping[str, Any] | None = None,
    *,
    input_shape: Sequence[int],
) -> BopsReport:
    """BOPs report (Eq. 3-4) of ``model`` under ``config`` (default: the bits a quantized model runs)."""
    if config is None:
        if not is_quantized(model):
            raise InputError("pass a MixedPrecisionConfig, or a model returned by sdk.quantize().")
        cfg = config_of(model)
    else:
        cfg = config if isinstance(config, MixedPrecisionConfig) else MixedPrecisionConfig(config)
    cfg.validate_for(model)
    return report_from_layers(layer_shapes(model, input_shape), cfg)
