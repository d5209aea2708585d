"""Quantized-model checkpoints for the CLI: zoo name + config + state dict, loaded with weights_only.

A checkpoint holds the model as ``sdk.retrain`` returned it, BatchNorm form included: ``"bn_fold": "qat"``
when conv -> BN pairs are ``calibration.FoldedConvBN`` layers (they load as such, so BN statistics and the
folded weight clips round-trip, and ``sdk.export`` freezes them exactly as it would the original), ``"none"``
for the plain ``sdk.quantize`` structure. Version 1 checkpoints predate the field and load as ``"none"``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sdk.config import MixedPrecisionConfig
from sdk.errors import InputError

__all__ = ["save_checkpoint", "load_checkpoint", "data_from_spec"]

FORMAT = "bpnas-checkpoint-v2"
_READABLE = ("bpnas-checkpoint-v1", FORMAT)
_BN_FOLDS = ("none", "qat")


def save_checkpoint(
    path: str | os.PathLike[str], qmodel: nn.Module, *, model: str, num_classes: int, in_channels: int
) -> Path:
    """Write atomically: a zoo model name, its build arguments, the config, the BN form and the state dict."""
    from calibration import FoldedConvBN
    from sdk.quant import config_of

    qat_folded = any(isinstance(m, FoldedConvBN) for m in qmodel.modules())

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "format": FORMAT,
        "model": model,
        "num_classes": num_classes,
        "in_channels": in_channels,
        "config": config_of(qmodel).to_dict(),
        "bn_fold": "qat" if qat_folded else "none",
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
    if not isinstance(blob, dict) or blob.get("format") not in _READABLE:
        raise InputError(f"{os.fspath(path)!r} is not a bpnas checkpoint; write it with `bpnas retrain`.")
    bn_fold = blob.get("bn_fold", "none")
    if bn_fold not in _BN_FOLDS:
        raise InputError(
            f"checkpoint {os.fspath(path)!r} has BN form {bn_fold!r}, which this bpnas cannot rebuild "
            f"(known: {', '.join(_BN_FOLDS)}); upgrade bpnas or write it again with `bpnas retrain`."
        )
    model = sdk.models.create(blob["model"], num_classes=blob["num_classes"], in_channels=blob["in_channels"])
    cfg = MixedPrecisionConfig.from_dict(blob["config"])
    qmodel = sdk.quantize(model, cfg)
    if bn_fold == "qat":
        from calibration import fold_bn

        qmodel = fold_bn(qmodel, qat=True)
    try:
        qmodel.load_state_dict(blob["state_dict"])
    except RuntimeError as e:
        detail = " ".join(str(e).split())
        raise InputError(
            f"checkpoint {os.fspath(path)!r} does not fit {blob['model']} quantized with its config and "
            f"BN form {bn_fold!r} ({detail[:300]}); write it again with `bpnas retrain`."
        ) from e
    meta = {k: v for k, v in blob.items() if k != "state_dict"}
    return qmodel.eval(), meta


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
