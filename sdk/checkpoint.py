"""Quantized-model checkpoints for the CLI: zoo name + config + state dict, loaded with weights_only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sdk.config import MixedPrecisionConfig
from sdk.errors import InputError

__all__ = ["save_checkpoint", "load_checkpoint", "data_from_spec"]

FORMAT = "bpnas-checkpoint-v1"


def save_checkpoint(
    path: str | os.PathLike[str], qmodel: nn.Module, *, model: str, num_classes: int, in_channels: int
) -> Path:
    """Write atomically: a zoo model name, its build arguments, the config and the state dict."""
    from sdk.quant import config_of

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "format": FORMAT,
        "model": model,
        "num_classes": num_classes,
        "in_channels": in_channels,
        "config": config_of(qmodel).to_dict(),
        "state_dict": qmodel.state_dict(),
    }
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    torch.save(blob, tmp)
    os.replace(tmp, out)
    return out


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the quantized zoo model of a checkpoint; returns (qmodel, metadata)."""
    import sdk

    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise InputError(f"checkpoint {os.fspath(path)!r} does not exist.") from e
    except Exception as e:  # torch raises several types for corrupt files
        raise InputError(
            f"checkpoint {os.fspath(path)!r} is unreadable ({e}); write it with bpnas retrain."
        ) from e
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise InputError(f"{os.fspath(path)!r} is not a bpnas checkpoint; write it with `bpnas retrain`.")
    model = sdk.models.create(blob["model"], num_classes=blob["num_classes"], in_channels=blob["in_channels"])
    cfg = MixedPrecisionConfig.from_dict(blob["config"])
    qmodel = sdk.quantize(model, cfg)
    qmodel.load_state_dict(blob["state_dict"])
    meta = {k: v for k, v in blob.items() if k != "state_dict"}
    return qmodel, meta


def data_from_spec(spec: str, **kwargs: Any) -> Any:
    """`digits` | `digits:UPSCALE` | `cifar10:ROOT` | `folder:ROOT:SIZE` -> sdk.data.DataSplits."""
    from sdk import data

    kind, _, rest = spec.partition(":")
    if kind == "digits":
        return data.digits(upscale=int(rest or 1), **kwargs)
    if kind == "cifar10" and rest:
        return data.cifar10(rest, **kwargs)
    if kind == "folder" and rest:
        root, _, size = rest.rpartition(":")
        if not root:
            root, size = rest, "224"
        return data.image_folder(root, int(size), **kwargs)
    raise InputError(f"unknown data spec {spec!r}; use digits, digits:4, cifar10:ROOT or folder:ROOT:SIZE.")
