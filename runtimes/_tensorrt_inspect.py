"""Reading TensorRT's engine inspector JSON: what each conv/GEMM really runs, in both JSON layouts.

``IEngineInspector.get_engine_information(LayerInformationFormat.JSON)`` (engine built with
``ProfilingVerbosity.DETAILED``, read with the execution context set so dynamic shapes are resolved) lists
every engine layer with its input/output tensors. Two layouts exist:

- TensorRT 10.x: one string per tensor, ``"Format/Datatype": "Row major linear FP32"``;
- TensorRT 11: the two are split, ``"Format": "Row major linear"`` and ``"Datatype": "Float"``.

Pure functions on JSON: no TensorRT needed, unit-tested everywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from runtimes.base import LayerPrecision

__all__ = ["bpnas_layer_name", "inspector_layers", "json_layout", "layer_precisions", "tensor_dtype"]

# fmt: off
# Inspector datatype words (lower case) -> bpnas precision names; the inspector spells them many ways.
_DTYPES = {"uint8": "u8", "int8": "i8", "int4": "i4", "fp8": "fp8", "fp4": "fp4", "fp4e2m1": "fp4",
           "bfloat16": "bf16", "fp16": "f16", "half": "f16", "fp32": "f32", "float": "f32", "int32": "i32"}
_WIDTH = {"i4": 4, "fp4": 4, "i8": 8, "u8": 8, "fp8": 8, "bf16": 16, "f16": 16, "f32": 32, "i32": 32}
_LINEAR_PARAMS = {"Convolution", "Deconvolution", "FullyConnected", "MatrixMultiply", "Gemm", "ConvActPool"}
_OPAQUE_TYPES = {"Myelin", "kgen", "DLA", "ForeignNode"}  # fused regions hiding their convs
# fmt: on


def inspector_layers(info: str | Mapping[str, Any] | list[Any]) -> list[Any]:
    """The layer records of inspector JSON: ``{"Layers": [...]}``, or a bare list of them."""
    data = json.loads(info) if isinstance(info, str) else info
    layers = data.get("Layers", []) if isinstance(data, Mapping) else data
    return list(layers) if isinstance(layers, list) else []


def json_layout(info: str | Mapping[str, Any] | list[Any]) -> str:
    """ "combined" (10.x ``Format/Datatype``), "split" (11 ``Format`` + ``Datatype``) or "names-only"."""
    for layer in inspector_layers(info):
        for tensor in (layer.get("Inputs") or []) if isinstance(layer, Mapping) else []:
            if "Format/Datatype" in tensor:
                return "combined"
            if "Datatype" in tensor:
                return "split"
    return "names-only"


def _dtype(text: Any) -> str | None:
    words = re.findall(r"[a-z0-9]+", str(text or "").lower())
    return next((_DTYPES[w] for w in words if w in _DTYPES), None)


def tensor_dtype(tensor: Mapping[str, Any]) -> str | None:
    """A tensor record's data type as a bpnas precision name, from either layout; None when unreadable
    (e.g. "N/A", which an inspector read without the execution context reports for dynamic shapes)."""
    if "Datatype" in tensor:
        return _dtype(tensor.get("Datatype"))
    return _dtype(tensor.get("Format/Datatype"))


def bpnas_layer_name(engine_name: str, known: Iterable[str] | None = None) -> str:
    """Map a (possibly fused) TensorRT layer name back to a bpnas layer name where it can be recognised.

    TensorRT joins fused layers' names with " + ". The parts may be node names equal to layer names (bpnas's
    exporter), initializer names ("layer1.0.conv1.weight") or module paths ("/layer1/layer1.0/conv1/Conv").
    With ``known`` names the longest match wins; without, only the first part (the conv/GEMM) is read.
    """
    known_set = set(known or ())

    def names(part: str) -> list[str]:
        base = re.sub(r"\.(weight|bias)$", "", part)
        out = [base] if base != part or part in known_set else []
        if part.startswith("/") and part.count("/") >= 2:
            comps = [c for c in part.strip("/").split("/")[:-1] if c]
            # "/layer1/layer1.0/conv1" repeats the parent as a prefix; keep the most qualified component
            nxt = [*comps[1:], ""]
            out.append(".".join(c for c, n in zip(comps, nxt) if not n.startswith(c + ".")))
        return out

    parts = [p.strip() for p in engine_name.split(" + ")]
    if not known_set:
        return next(iter(names(parts[0])), engine_name)
    matches = [k for part in parts for c in names(part) for k in known_set if c == k or c.endswith("." + k)]
    return max(matches, key=len) if matches else engine_name


def layer_precisions(
    info: str | Mapping[str, Any] | list[Any],
    *,
    known_layers: Iterable[str] | None = None,
    float_layers: Iterable[str] = (),
) -> list[LayerPrecision]:
    """Per conv/linear layer, what the engine runs, from inspector JSON in either layout.

    A layer's precision is the wider of its input activation type and its weight type; "unknown" when the
    activation type is unreadable (never guessed from the weights alone). ``upcast`` marks a
    layer the bundle deploys quantized (not in ``float_layers``) that the engine runs in FP16/FP32. Fused
    regions (Myelin, DLA) hide their convolutions: they are listed with precision "unknown". An engine built
    without DETAILED verbosity lists only layer names, which yields an empty list.
    """
    known = list(known_layers or ())
    floats = set(float_layers)
    out = []
    for layer in inspector_layers(info):
        if not isinstance(layer, Mapping):
            continue  # LAYER_NAMES_ONLY: a bare name, no types
        name, ltype = str(layer.get("Name", "")), str(layer.get("LayerType", ""))
        if ltype in _OPAQUE_TYPES or name.startswith("{ForeignNode"):
            out.append(LayerPrecision(name, ltype or "ForeignNode", precision="unknown", upcast=False))
            continue
        if layer.get("ParameterType") not in _LINEAR_PARAMS and ltype not in _LINEAR_PARAMS:
            continue
        inputs = layer.get("Inputs") or [{}]
        weights = layer.get("Weights") or {}
        act = tensor_dtype(inputs[0])  # None ("N/A") when read without the execution context
        kinds = [k for k in (act, _dtype(weights.get("Type", weights.get("Datatype")))) if k is not None]
        precision = max(kinds, key=lambda k: _WIDTH.get(k, 32)) if act is not None else "unknown"
        mapped = bpnas_layer_name(name, known)
        upcast = mapped not in floats and _WIDTH.get(precision, 0) > 8
        out.append(LayerPrecision(layer=mapped, kernel=ltype, precision=precision, upcast=upcast))
    return out
