"""Which layers of a model are quantizable: every nn.Conv2d and nn.Linear, named as in named_modules()."""

from __future__ import annotations

from torch import nn

from sdk.errors import InputError

__all__ = ["QUANTIZABLE_TYPES", "quantizable_layers", "quantizable_layer_names"]

QUANTIZABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)


def quantizable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every Conv2d/Linear in model order; raises if there are none."""
    if not isinstance(model, nn.Module):
        raise InputError(f"expected a torch.nn.Module, got {type(model).__name__}.")
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, QUANTIZABLE_TYPES)]
    if not layers:
        raise InputError(
            f"{type(model).__name__} has no nn.Conv2d or nn.Linear layers; bpnas quantizes only those."
        )
    return layers


def quantizable_layer_names(model: nn.Module) -> list[str]:
    return [n for n, _ in quantizable_layers(model)]
