"""What engines really run for each conv/linear layer of a QDQ ONNX artifact.

``ort_kernel_report`` reads the optimized model ONNX Runtime writes
(``SessionOptions.optimized_model_filepath``) and ``openvino_precision_report`` the runtime model OpenVINO
compiles (``compiled_model.get_runtime_model()``, rt_info ``layerType`` / ``runtimePrecision``). Node names
are the bpnas layer names (DESIGN §4); the suffixes engines append are removed. Engines are imported inside
the functions only.

Measured with onnxruntime 1.32 / OpenVINO 2026.4 on x86 (see tests/export/test_inspect.py): ORT fuses
``DQ -> Conv -> Q`` into QLinearConv only when the conv's input and output are both uint8 and the conv's only
reader is one QuantizeLinear; a float ``Clip(0, alpha)`` between conv and QuantizeLinear, int8 activations
or mixed types leave a float Conv/FusedConv. OpenVINO runs u8/i8 Convolution for every DQ -> Conv, whatever
follows it, and f32 for ConvInteger.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import onnx

from runtimes.bundle import map_layer
from runtimes.onnxruntime import FLOAT_KERNELS, INTEGER_KERNELS, precisions_from_model
from runtimes.openvino import LINEAR_TYPES

__all__ = [
    "KernelInfo",
    "INTEGER_KERNELS",
    "FLOAT_KERNELS",
    "ort_kernel_report",
    "openvino_precision_report",
    "float_layers",
    "layer_names",
]

# INTEGER_KERNELS / FLOAT_KERNELS / LINEAR_TYPES: the engines' kernel tables, defined by their adapters


@dataclass(frozen=True)
class KernelInfo:
    """One layer as an engine runs it: the kernel (op/layer type), its precision and whether it is integer."""

    kernel: str
    precision: str  # "u8", "i8", "f32", ...

    @property
    def integer(self) -> bool:
        return self.precision in ("u8", "i8")


def layer_names(model: onnx.ModelProto) -> list[str]:
    """The bpnas layer names an artifact was exported with (metadata ``bpnas_config``), else the names of
    its Conv/Gemm/MatMul-like nodes."""
    import json

    for p in model.metadata_props:
        if p.key == "bpnas_config":
            return list(json.loads(p.value).get("layers", {}))
    ops = {"Conv", "Gemm", "MatMul", "ConvInteger", "MatMulInteger"}
    return [n.name for n in model.graph.node if n.op_type in ops and n.name]


def _load(model: str | os.PathLike[str] | onnx.ModelProto) -> onnx.ModelProto:
    return model if isinstance(model, onnx.ModelProto) else onnx.load(os.fspath(model))


def ort_kernel_report(
    model: str | os.PathLike[str] | onnx.ModelProto, *, providers: tuple[str, ...] = ("CPUExecutionProvider",)
) -> dict[str, KernelInfo]:
    """Layer name -> the kernel ONNX Runtime runs it with, at graph optimization level "all"."""
    import onnxruntime as ort

    src = _load(model)
    layers = layer_names(src)
    with tempfile.TemporaryDirectory(prefix="bpnas-ort-") as tmp:
        so = ort.SessionOptions()
        so.log_severity_level = 3
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(src.SerializeToString(), so, providers=list(providers))
        opt = onnx.load(so.optimized_model_filepath)
    found = precisions_from_model(opt, {layer: (8, 8) for layer in layers})  # the adapter's own reading
    return {p.layer: KernelInfo(p.kernel, p.precision) for p in found if p.kernel != "missing"}


def openvino_precision_report(
    model: str | os.PathLike[str] | onnx.ModelProto, *, device: str = "CPU"
) -> dict[str, KernelInfo]:
    """Layer name -> OpenVINO's compiled layer type and ``runtimePrecision`` (f32 float layers are asked for,
    not bf16, so the report shows integer-vs-float and not the CPU's float default)."""
    import openvino as ov

    src = _load(model)
    layers = layer_names(src)
    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32"} if device == "CPU" else {}
    with tempfile.TemporaryDirectory(prefix="bpnas-ov-") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(src, str(path))
        compiled = core.compile_model(core.read_model(str(path)), device, config)
    report: dict[str, KernelInfo] = {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        kind = rt["layerType"].astype(str) if "layerType" in rt else op.get_type_name()
        if kind not in LINEAR_TYPES:
            continue
        layer = map_layer(op.get_friendly_name(), layers)
        if layer is None:
            continue
        precision = rt["runtimePrecision"].astype(str) if "runtimePrecision" in rt else "f32"
        report[layer] = KernelInfo(kind, precision.lower())
    return report


def float_layers(report: Mapping[str, KernelInfo], layers: Iterable[str] | None = None) -> list[str]:
    """Layers the engine runs in float (or does not report at all, when ``layers`` is given)."""
    names = list(layers) if layers is not None else list(report)
    return [n for n in names if n not in report or not report[n].integer]
