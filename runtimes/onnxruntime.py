"""ONNX Runtime adapter (CPU execution provider) for target "onnxruntime".

The artifact is the bundle's QDQ ONNX model. ONNX Runtime fuses DequantizeLinear -> Conv -> QuantizeLinear
groups into QLinearConv (and Gemm/MatMul into QGemm/QLinearMatMul) at optimization level "extended" or above;
groups it cannot fuse run as float Conv on dequantized tensors. :meth:`OrtSession.effective_precision` finds
out which by reading the optimized model ORT writes (``SessionOptions.optimized_model_filepath``); node names
are the bpnas layer names (DESIGN §4), with ORT's suffixes ("_token_3", "_nchwc") removed.

``RuntimeOptions.extra`` keys (anything else is refused):

- ``graph_optimization`` ("disable" | "basic" | "extended" | "all", default "all").
- ``inter_op_threads`` (int | None): threads across independent nodes; None = ORT's default.
- ``providers`` (tuple of provider names, default ("CPUExecutionProvider",)).

``RuntimeOptions.threads`` sets ``intra_op_num_threads``. ``performance_hint`` has no ORT equivalent and is
ignored. ``InferenceSession.run`` may be called from several threads at once, so sessions are shared.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtimes.base import LayerPrecision, LayerTime, RuntimeOptions, typed_options
from runtimes.bundle import Manifest, expected_width, map_layer, precision_width
from sdk.errors import BundleError, InputError, TargetUnavailable

__all__ = [
    "FLOAT_KERNELS",
    "INTEGER_KERNELS",
    "OrtOptions",
    "OrtSession",
    "load",
    "precisions_from_model",
    "times_from_profile",
]

_LEVELS = ("disable", "basic", "extended", "all")
#: ORT's integer kernels -> input index of the activation zero point, whose dtype is the activation precision
INTEGER_KERNELS: Mapping[str, int | None] = {
    "QLinearConv": 2, "QLinearMatMul": 2, "QGemm": 2, "ConvInteger": 2, "MatMulInteger": 2,
    "MatMulIntegerToFloat": 4, "DynamicQuantizeMatMul": None}  # fmt: skip
#: ORT's float kernels for a conv/linear layer (a layer left on one of these runs dequantized)
FLOAT_KERNELS = frozenset({"Conv", "FusedConv", "NhwcFusedConv", "Gemm", "FusedGemm", "MatMul", "FusedMatMul",
                           "ConvTranspose"})  # fmt: skip
_ZP_DTYPE = {2: "u8", 3: "i8", 4: "u16", 5: "i16"}  # onnx TensorProto data types
_FLOAT_DTYPE = {1: "f32", 10: "f16", 16: "bf16", 11: "f64"}


@dataclass(frozen=True)
class OrtOptions:
    """The typed form of ``RuntimeOptions.extra`` for ONNX Runtime (see the module docstring)."""

    graph_optimization: str = "all"
    inter_op_threads: int | None = None
    providers: tuple[str, ...] = ("CPUExecutionProvider",)

    def __post_init__(self) -> None:
        if self.graph_optimization not in _LEVELS:
            raise InputError(f"graph_optimization must be one of {_LEVELS}, got {self.graph_optimization!r}.")
        t = self.inter_op_threads
        if t is not None and (isinstance(t, bool) or not isinstance(t, int) or t < 1):
            raise InputError(f"inter_op_threads must be a positive int or None, got {t!r}.")
        if isinstance(self.providers, str) or not self.providers:
            raise InputError(
                f"providers must be a non-empty tuple of provider names, got {self.providers!r}."
            )
        object.__setattr__(self, "providers", tuple(self.providers))

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> OrtOptions:
        return typed_options(cls, extra, "onnxruntime")


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError as e:
        raise TargetUnavailable(
            "target 'onnxruntime' needs the onnxruntime package: reinstall bpnas (`pip install bpnas`)."
        ) from e
    return onnxruntime


def _session_options(ort: Any, options: RuntimeOptions, opts: OrtOptions) -> Any:
    so = ort.SessionOptions()
    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    so.graph_optimization_level = levels[opts.graph_optimization]
    if options.threads is not None:
        so.intra_op_num_threads = int(options.threads)
    if opts.inter_op_threads is not None:
        so.inter_op_num_threads = opts.inter_op_threads
    so.log_severity_level = 3  # errors only: ORT warns on every optimized-model write at level "all"
    return so


# -- pure functions over ORT outputs (unit-tested without a session) -----------------------------------------
def precisions_from_model(model: Any, pairs: Mapping[str, tuple[int, int]]) -> list[LayerPrecision]:
    """Per bpnas layer, the kernel and precision in an ORT-optimized ``onnx.ModelProto``.

    Integer kernels report their activation type (zero-point dtype: "u8"/"i8"); float kernels "f32". A layer
    the bundle quantizes that runs wider than an 8-bit container is flagged ``upcast``. Layers absent from the
    optimized graph are listed with kernel "missing" and precision "unknown".
    """
    inits = {t.name: t.data_type for t in model.graph.initializer}
    value_types = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    value_types.update({v.name: v.type.tensor_type.elem_type for v in model.graph.input})
    found: dict[str, LayerPrecision] = {}
    for node in model.graph.node:
        integer = node.op_type in INTEGER_KERNELS
        if not integer and node.op_type not in FLOAT_KERNELS:
            continue
        layer = map_layer(node.name, pairs) or next(
            (lay for i in node.input if i in inits for lay in [_weight_owner(i, pairs)] if lay), None
        )
        if layer is None or layer in found:
            continue
        if integer:
            idx = INTEGER_KERNELS[node.op_type]
            zp = node.input[idx] if idx is not None and len(node.input) > idx else ""
            precision = _ZP_DTYPE.get(inits.get(zp, 2), "u8") if zp else "u8"
        else:
            x = node.input[0] if node.input else ""
            precision = _FLOAT_DTYPE.get(value_types.get(x, inits.get(x, 1)), "f32")
        upcast = precision_width(precision) > expected_width(pairs[layer])
        found[layer] = LayerPrecision(layer=layer, kernel=node.op_type, precision=precision, upcast=upcast)
    return [found.get(k) or LayerPrecision(k, "missing", "unknown", upcast=False) for k in pairs]


def _weight_owner(initializer: str, pairs: Mapping[str, tuple[int, int]]) -> str | None:
    """The layer an initializer belongs to, by its name ("conv2.weight_q" -> "conv2")."""
    return map_layer(initializer, pairs)


def times_from_profile(
    events: Sequence[Mapping[str, Any]], pairs: Mapping[str, tuple[int, int]]
) -> list[LayerTime]:
    """Mean per-run time of every node in an ORT profile (Chrome-trace JSON events), first run excluded.

    Conv/Gemm kernels are named by their bpnas layer; other nodes keep ORT's node name.
    """
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e["ts"])  # fmt: skip
    start = runs[0]["ts"] + runs[0]["dur"] if len(runs) > 1 else -1  # drop the first (warm-up) run
    n_runs = max(len(runs) - 1, 1) if len(runs) > 1 else max(len(runs), 1)
    totals: dict[tuple[str, str], float] = {}
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time") or e["ts"] < start:
            continue
        node = e["name"][: -len("_kernel_time")]
        op = str(e.get("args", {}).get("op_name", ""))
        name = map_layer(node, pairs) if op in INTEGER_KERNELS or op in FLOAT_KERNELS else None
        key = (name or node, op)
        totals[key] = totals.get(key, 0.0) + float(e["dur"])
    return [LayerTime(name=n, op_type=op, ms=us / n_runs / 1e3) for (n, op), us in totals.items()]


class OrtSession:
    """An ``onnxruntime.InferenceSession`` over the bundle's artifact."""

    thread_safe = True  # InferenceSession.run is documented safe to call concurrently

    def __init__(self, artifact: Path, manifest: Manifest, options: RuntimeOptions) -> None:
        ort = _import_ort()
        self._opts = OrtOptions.from_extra(options.extra)
        self._options = options
        self._artifact = Path(artifact)
        self._pairs = manifest.layer_pairs()
        self.input_name = manifest.input.name
        self._tmp: str | None = None
        so = _session_options(ort, options, self._opts)
        if options.profiling:
            self._tmp = tempfile.mkdtemp(prefix="bpnas-ort-")
            so.enable_profiling = True
            so.profile_file_prefix = os.path.join(self._tmp, "profile")
            so.optimized_model_filepath = os.path.join(self._tmp, "optimized.onnx")
        try:
            self._sess: Any = ort.InferenceSession(
                str(self._artifact), so, providers=list(self._opts.providers)
            )
        except Exception as e:  # ORT raises its own Fail/InvalidGraph/NoSuchFile types
            self._cleanup()
            raise BundleError(
                f"onnxruntime could not load {self._artifact.name}: {e}. Re-export the bundle."
            ) from e
        ins = [i.name for i in self._sess.get_inputs()]
        outs = [o.name for o in self._sess.get_outputs()]
        if self.input_name not in ins or manifest.output.name not in outs:
            self.close()
            raise BundleError(
                f"{self._artifact.name} has inputs {ins} and outputs {outs}; the manifest says "
                f"{self.input_name!r} -> {manifest.output.name!r}. Re-export the bundle."
            )
        self.output_names: tuple[str, ...] = tuple(outs)
        self._times: list[LayerTime] | None = None
        self._precisions: list[LayerPrecision] | None = None

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self._sess is None:
            raise InputError("this onnxruntime session is closed; load the bundle again.")
        outs = self._sess.run(None, {self.input_name: x})
        return {name: np.asarray(y, dtype=np.float32) for name, y in zip(self.output_names, outs)}

    def layer_times(self) -> list[LayerTime] | None:
        """Mean per-run node times; ends ORT's profiling on the first call (later runs are not added)."""
        if not self._options.profiling or self._sess is None:
            return self._times
        if self._times is None:
            path = self._sess.end_profiling()
            with open(path, encoding="utf-8") as f:
                self._times = times_from_profile(json.load(f), self._pairs)
        return self._times

    def effective_precision(self) -> list[LayerPrecision]:
        if self._precisions is None:
            self._precisions = precisions_from_model(self._optimized_model(), self._pairs)
        return self._precisions

    def _optimized_model(self) -> Any:
        import onnx

        if self._tmp is not None and os.path.exists(os.path.join(self._tmp, "optimized.onnx")):
            return onnx.load(os.path.join(self._tmp, "optimized.onnx"), load_external_data=False)
        ort = _import_ort()
        with tempfile.TemporaryDirectory(prefix="bpnas-ort-") as tmp:
            so = _session_options(ort, RuntimeOptions(threads=1), self._opts)
            so.optimized_model_filepath = os.path.join(tmp, "optimized.onnx")
            ort.InferenceSession(str(self._artifact), so, providers=list(self._opts.providers))
            return onnx.load(so.optimized_model_filepath, load_external_data=False)

    def _cleanup(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def close(self) -> None:
        if getattr(self, "_sess", None) is not None and self._options.profiling and self._times is None:
            with contextlib.suppress(OSError, ValueError):
                self.layer_times()  # flush ORT's profile file so it can be removed
        self._sess = None
        self._cleanup()


def load(artifact: Path, manifest: Manifest, options: RuntimeOptions) -> OrtSession:
    """Loader for target "onnxruntime"."""
    return OrtSession(Path(artifact), manifest, options)
