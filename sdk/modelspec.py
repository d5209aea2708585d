"""Bring your own model: build it from a spec string and load its float weights, with clear errors.

A spec is a zoo name (``resnet20``), an importable class (``package.module:Class``) or a class in a Python
file (``path/to/file.py:Class``). ``args`` are the constructor's keyword arguments (``--model-args`` JSON).
Weights are a state_dict, or a dict holding one (``state_dict``/``model_state_dict``/``model``, as most
training scripts save), or a bpnas float checkpoint; anything else is refused with the way to save it.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdk.errors import InputError

__all__ = ["ModelSpec", "parse_model_args", "build_model", "load_weights", "read_state_dict"]

_STATE_KEYS = ("state_dict", "model_state_dict", "model")


@dataclass(frozen=True)
class ModelSpec:
    """Which model to build: ``spec`` as the user wrote it, ``args`` for its constructor, and for a file
    spec the absolute path of the file (so a checkpoint rebuilds it from any working directory)."""

    spec: str
    args: Mapping[str, Any] = field(default_factory=dict)
    file: str | None = None

    @property
    def is_zoo(self) -> bool:
        return ":" not in self.spec

    def to_dict(self) -> dict[str, Any]:
        return {"spec": self.spec, "args": dict(self.args), "file": self.file}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelSpec:
        return cls(str(d["spec"]), dict(d.get("args") or {}), d.get("file"))

    @classmethod
    def parse(cls, spec: str, args: Mapping[str, Any] | None = None) -> ModelSpec:
        """Check the spec's form (not yet its class) and pin a file spec to its absolute path."""
        if not isinstance(spec, str) or not spec.strip():
            raise InputError("--model needs a zoo name, package.module:Class or path/to/file.py:Class.")
        where, sep, cls_name = spec.rpartition(":")
        if not sep:
            return cls(spec, dict(args or {}))
        if not where or not cls_name.isidentifier():
            raise InputError(
                f"model spec {spec!r} is not NAME, package.module:Class or path/to/file.py:Class."
            )
        file = os.fspath(Path(where).resolve()) if where.endswith(".py") else None
        return cls(spec, dict(args or {}), file)


def parse_model_args(text: str | None) -> dict[str, Any]:
    """``--model-args '{"width": 16}'`` -> dict; a clear error for anything but a JSON object."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"--model-args is not valid JSON ({e.msg}); write e.g. '{{\"width\": 16}}'.") from e
    if not isinstance(value, dict):
        raise InputError(f"--model-args must be a JSON object of keyword arguments, got {text!r}.")
    return value


def _load_class(spec: ModelSpec) -> type:
    where, _, cls_name = spec.spec.rpartition(":")
    if spec.file is not None:
        path = Path(spec.file)
        if not path.is_file():
            raise InputError(f"model file {spec.file!r} (from --model {spec.spec!r}) does not exist.")
        name = f"bpnas_user_{path.stem}_{hashlib.sha1(spec.file.encode()).hexdigest()[:8]}"
        module = sys.modules.get(name)
        if module is None:
            loader_spec = importlib.util.spec_from_file_location(name, path)
            if loader_spec is None or loader_spec.loader is None:
                raise InputError(f"cannot import {spec.file!r} as a Python module.")
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[name] = module
            try:
                loader_spec.loader.exec_module(module)
            except Exception as e:
                del sys.modules[name]
                raise InputError(f"importing model file {spec.file!r} failed: {type(e).__name__}: {e}") from e
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as e:
            raise InputError(
                f"cannot import module {where!r} of --model {spec.spec!r} ({e}); is it on PYTHONPATH?"
            ) from e
    found = getattr(module, cls_name, None)
    if not isinstance(found, type):
        classes = [n for n, v in vars(module).items() if isinstance(v, type)]
        close = difflib.get_close_matches(cls_name, classes, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else f" Classes there: {', '.join(classes)}."
        raise InputError(f"{where!r} has no class {cls_name!r}.{hint}")
    return found


def build_model(spec: ModelSpec, *, num_classes: int | None = None, in_channels: int | None = None) -> Any:
    """The float model of ``spec``. Zoo models get ``num_classes``/``in_channels`` from the data unless
    ``args`` sets them; a user class gets exactly ``args``. Functional residual additions are turned into
    ``sdk.models.layers.Add`` modules (see :mod:`sdk.quant.functional_adds`) so they are quantized."""
    from torch import nn

    if spec.is_zoo:
        import sdk

        kwargs = {"num_classes": num_classes, "in_channels": in_channels, **spec.args}
        return sdk.models.create(spec.spec, **{k: v for k, v in kwargs.items() if v is not None})
    cls = _load_class(spec)
    if not issubclass(cls, nn.Module):
        raise InputError(f"--model {spec.spec!r} is {cls.__name__}, not a torch.nn.Module subclass.")
    try:
        model = cls(**spec.args)
    except TypeError as e:
        raise InputError(
            f"building {spec.spec} with --model-args {json.dumps(dict(spec.args))} failed ({e}); "
            "pass the constructor's keyword arguments as a JSON object."
        ) from e
    return model


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The float state_dict stored in ``path`` (see the module docstring for what is accepted)."""
    import pickle

    import torch

    where = os.fspath(path)
    if not Path(where).is_file():
        raise InputError(f"weights file {where!r} does not exist.")
    try:
        blob = torch.load(where, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise InputError(
            f"{where!r} holds a pickled Python object (a whole model?), which bpnas does not unpickle: it "
            "can "
            "run arbitrary code. Save the weights instead: torch.save(model.state_dict(), PATH)."
        ) from e
    except Exception as e:
        raise InputError(f"weights file {where!r} is unreadable by torch.load ({type(e).__name__}).") from e
    if isinstance(blob, dict) and blob.get("format", "").startswith("bpnas-checkpoint"):
        if blob.get("kind") != "float":
            raise InputError(
                f"{where!r} is a quantized bpnas checkpoint; --weights takes float weights. Use it with "
                "`bpnas export` or pass the run's float.pt."
            )
        blob = blob["state_dict"]
    if isinstance(blob, dict):
        for key in _STATE_KEYS:
            if isinstance(blob.get(key), dict):
                blob = blob[key]
                break
    if not isinstance(blob, dict) or not all(isinstance(v, torch.Tensor) for v in blob.values()):
        raise InputError(
            f"{where!r} is not a state_dict (a dict of tensors); save one with "
            "torch.save(model.state_dict(), PATH)."
        )
    return {k.removeprefix("module."): v for k, v in blob.items()}


def load_weights(model: Any, path: str | os.PathLike[str]) -> None:
    """Load float weights into ``model`` in place; names every missing/unexpected key and shape mismatch."""
    state = read_state_dict(path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    for what, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if items:
            more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
            problems.append(f"{what}: {', '.join(items[:5])}{more}")
    if problems:
        raise InputError(
            f"weights {os.fspath(path)!r} do not fit {type(model).__name__}: {'; '.join(problems)}. "
            "Check --model and --model-args (e.g. num_classes) match the model that was saved."
        )
    model.load_state_dict(state)
