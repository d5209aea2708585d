"""Checkpoints that chain the CLI's verbs: the model spec, the data it was trained on, the preprocessing a
deployment needs, the labels, the config and the state dict; read back with ``weights_only``.

``kind`` is ``"float"`` (what ``bpnas search`` pre-trains and ``retrain``/``quantize`` start from) or
``"quantized"`` (what ``retrain``/``quantize`` write and ``export`` takes). A quantized checkpoint holds the
model as ``sdk.retrain`` returned it, BatchNorm form included: ``"bn_fold": "qat"`` when conv -> BN pairs are
``calibration.FoldedConvBN`` layers, ``"ptq"`` when BN was folded into the convs (``calibration.ptq``),
``"none"`` for the plain ``sdk.quantize`` structure. Versions 1-2 held a zoo name only and still load.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sdk.config import MixedPrecisionConfig
from sdk.dataspec import load_data
from sdk.errors import InputError
from sdk.modelspec import ModelSpec, build_model
from sdk.outputs import write_atomic

__all__ = ["save_checkpoint", "load_checkpoint", "read_meta", "data_from_spec"]

FORMAT = "bpnas-checkpoint-v3"
_READABLE = ("bpnas-checkpoint-v1", "bpnas-checkpoint-v2", FORMAT)
_BN_FOLDS = ("none", "qat", "ptq")
data_from_spec = load_data  # the old name, kept for sdk.nas.command


def _bn_form(qmodel: nn.Module) -> str:
    from calibration import FoldedConvBN
    from sdk.quant import is_quantized

    if not is_quantized(qmodel):
        return "none"
    if any(isinstance(m, FoldedConvBN) for m in qmodel.modules()):
        return "qat"
    return "none" if any(isinstance(m, nn.BatchNorm2d) for m in qmodel.modules()) else "ptq"


def save_checkpoint(
    path: str | os.PathLike[str],
    qmodel: nn.Module,
    *,
    model: str | ModelSpec,
    num_classes: int | None = None,
    in_channels: int | None = None,
    data: str | None = None,
    input_shape: Sequence[int] | None = None,
    preprocess: Any = None,
    labels: Sequence[str] | None = None,
) -> Path:
    """Write ``qmodel`` (float or quantized) with what rebuilds and deploys it, atomically."""
    from sdk.quant import config_of, is_quantized

    spec = model if isinstance(model, ModelSpec) else ModelSpec.parse(model)
    quantized = is_quantized(qmodel)
    pre = preprocess.to_dict() if hasattr(preprocess, "to_dict") else preprocess
    blob = {
        "format": FORMAT,
        "kind": "quantized" if quantized else "float",
        "model": spec.spec,
        "model_spec": spec.to_dict(),
        "num_classes": num_classes,
        "in_channels": in_channels,
        "data": data,
        "input_shape": list(input_shape) if input_shape is not None else None,
        "preprocess": None if pre is None else dict(pre),
        "labels": None if labels is None else [str(v) for v in labels],
        "config": config_of(qmodel).to_dict() if quantized else None,
        "bn_fold": _bn_form(qmodel),
        "state_dict": qmodel.state_dict(),
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(out, lambda tmp: torch.save(blob, tmp))


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint's fields (state dict included), checked to be a bpnas checkpoint."""
    where = os.fspath(path)
    if not Path(where).is_file():
        raise InputError(f"checkpoint {where!r} does not exist.")
    try:
        blob = torch.load(where, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt files
        raise InputError(
            f"checkpoint {where!r} is unreadable ({type(e).__name__}); write it with bpnas retrain/quantize."
        ) from e
    if not isinstance(blob, dict) or blob.get("format") not in _READABLE:
        raise InputError(
            f"{where!r} is not a bpnas checkpoint; write one with `bpnas retrain` or `bpnas quantize` "
            "(plain float weights go to --weights)."
        )
    blob.setdefault("kind", "quantized")
    blob.setdefault("model_spec", {"spec": blob["model"], "args": {}, "file": None})
    return dict(blob)


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint (float, or quantized with its BN form); returns (model, metadata)."""
    import sdk

    where = os.fspath(path)
    blob = read_meta(path)
    bn_fold = blob.get("bn_fold", "none")
    if bn_fold not in _BN_FOLDS:
        raise InputError(
            f"checkpoint {where!r} has BN form {bn_fold!r}, which this bpnas cannot rebuild "
            f"(known: {', '.join(_BN_FOLDS)}); upgrade bpnas or write it again."
        )
    spec = ModelSpec.from_dict(blob["model_spec"])
    model = build_model(spec, num_classes=blob.get("num_classes"), in_channels=blob.get("in_channels"))
    if blob["kind"] == "quantized":
        model = sdk.quantize(model, MixedPrecisionConfig.from_dict(blob["config"]))
        if bn_fold != "none":
            from calibration import fold_bn

            model = fold_bn(model, qat=bn_fold == "qat")
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as e:
        detail = " ".join(str(e).split())
        raise InputError(
            f"checkpoint {where!r} does not fit {spec.spec} (its config and BN form {bn_fold!r}): "
            f"{detail[:300]}; was the model's code changed since? Write the checkpoint again."
        ) from e
    meta = {k: v for k, v in blob.items() if k != "state_dict"}
    meta["model_spec"] = spec
    return model.eval(), meta
