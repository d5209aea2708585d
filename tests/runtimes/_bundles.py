"""Tiny bpnas bundles built without the exporter: a QDQ ONNX graph per DESIGN §4 and a manifest per §5.

The network is conv1 (3->8, 3x3) -> ReLU -> conv2 (8->8) -> ReLU -> conv3 (8->8) -> ReLU -> global average
pool -> fc (8->10),
every quantized layer in the QCDQ pattern: input QuantizeLinear -> integer Clip to the a-bit code range
(omitted when it is the container's full range) -> DequantizeLinear; int8 weight codes -> per-channel
DequantizeLinear; int32 bias -> DequantizeLinear(s_in * s_w); signed 8-bit quantized logits. A side at 32
bits stays float. Node names equal the bpnas layer names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from runtimes.bundle import Manifest, read_manifest, sha256_file
from sdk.cost import report_from_layers

LAYERS = ("conv1", "conv2", "conv3", "fc")
NUM_CLASSES = 10
CHANNELS = 8
PREPROCESS = {
    "size": [8, 8],
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "scale": 1 / 255,
    "layout": "NCHW",
    "bgr_to_rgb": True,
    "channels": 3,
    "interpolation": "linear",
}
LABELS = [f"class{i}" for i in range(NUM_CLASSES)]


class _Graph:
    def __init__(self, seed: int) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.rng = np.random.default_rng(seed)

    def init(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: Sequence[str], output: str, name: str | None = None, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, list(inputs), [output], name=name or output, **attrs))
        return output

    def act_quant(self, x: str, prefix: str, bits: int, *, signed: bool, alpha: float) -> tuple[str, float]:
        """QCDQ on an activation; returns (dequantized tensor, scale)."""
        if signed:
            hi = 2 ** (bits - 1) - 1
            lo, dtype, full = -hi, np.int8, (-128, 127)
        else:
            lo, hi, dtype, full = 0, 2**bits - 1, np.uint8, (0, 255)
        scale = np.float32(alpha / hi)
        s = self.init(f"{prefix}.scale", np.array(scale, np.float32))
        z = self.init(f"{prefix}.zp", np.array(0, dtype))
        q = self.node("QuantizeLinear", [x, s, z], f"{prefix}.q")
        if (lo, hi) != full:
            q = self.node(
                "Clip",
                [
                    q,
                    self.init(f"{prefix}.lo", np.array(lo, dtype)),
                    self.init(f"{prefix}.hi", np.array(hi, dtype)),
                ],
                f"{prefix}.clip",
            )
        return self.node("DequantizeLinear", [q, s, z], f"{prefix}.dq"), float(scale)

    def weights(
        self, layer: str, w: np.ndarray, bias: np.ndarray, w_bits: int, s_in: float | None
    ) -> list[str]:
        """Weight and bias inputs of a conv/gemm: QDQ codes when quantized, float otherwise."""
        if w_bits == 32 or s_in is None:
            return [self.init(f"{layer}.weight", w.astype(np.float32)), self.init(f"{layer}.bias", bias)]
        n = 2 ** (w_bits - 1) - 1
        alpha = np.abs(w).reshape(w.shape[0], -1).max(axis=1).astype(np.float32)
        s_w = (alpha / n).astype(np.float32)
        codes = np.clip(np.round(w / s_w.reshape(-1, *([1] * (w.ndim - 1)))), -n, n).astype(np.int8)
        wq = self.init(f"{layer}.weight_q", codes)
        ws = self.init(f"{layer}.weight_scale", s_w)
        wz = self.init(f"{layer}.weight_zp", np.zeros_like(s_w, dtype=np.int8))
        wd = self.node("DequantizeLinear", [wq, ws, wz], f"{layer}.weight_dq", axis=0)
        s_b = (np.float32(s_in) * s_w).astype(np.float32)
        bq = self.init(f"{layer}.bias_q", np.round(bias / s_b).astype(np.int32))
        bs = self.init(f"{layer}.bias_scale", s_b)
        bz = self.init(f"{layer}.bias_zp", np.zeros_like(s_b, dtype=np.int32))
        bd = self.node("DequantizeLinear", [bq, bs, bz], f"{layer}.bias_dq", axis=0)
        return [wd, bd]


def make_model(
    pairs: Mapping[str, tuple[int, int]], *, size: int = 8, static_batch: int | None = None, seed: int = 0
) -> onnx.ModelProto:
    """The QDQ ONNX model for ``pairs`` (layer -> (w_bits, a_bits))."""
    g = _Graph(seed)
    rng = g.rng
    x = "input"
    conv = (CHANNELS, CHANNELS, 3, 3)
    shapes = {"conv1": (CHANNELS, 3, 3, 3), "conv2": conv, "conv3": conv, "fc": (NUM_CLASSES, CHANNELS)}
    alphas = {"conv1": 2.5, "conv2": 3.0, "conv3": 3.0, "fc": 1.5}
    for layer in LAYERS:
        w_bits, a_bits = pairs[layer]
        if layer == "fc":  # fc reads the pooled features
            x = g.node("GlobalAveragePool", [x], "pool")
            x = g.node("Flatten", [x], "flatten", axis=1)
        s_in = None
        if a_bits != 32:  # the input quantizer stays even when the weights are float
            x, s_in = g.act_quant(x, f"{layer}.act", a_bits, signed=layer == "conv1", alpha=alphas[layer])
        w = rng.normal(0, 0.5, shapes[layer]).astype(np.float32)
        b = rng.normal(0, 0.1, shapes[layer][0]).astype(np.float32)
        wb = g.weights(layer, w, b, w_bits, s_in)
        if layer == "fc":
            x = g.node("Gemm", [x, *wb], "fc.out", name="fc", transB=1)
        else:
            x = g.node("Conv", [x, *wb], f"{layer}.out", name=layer, pads=[1, 1, 1, 1], kernel_shape=[3, 3])
            x = g.node("Relu", [x], f"{layer}.relu")
    x, _ = g.act_quant(x, "logits_quant", 8, signed=True, alpha=6.0)
    g.node("Identity", [x], "logits")
    batch: int | str = static_batch if static_batch is not None else "N"
    graph = helper.make_graph(
        g.nodes,
        "bpnas_tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, NUM_CLASSES])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    config = {"format_version": 1, "layers": {k: list(v) for k, v in pairs.items()}}
    helper.set_model_props(
        model,
        {"bpnas_version": "0.1.0", "bpnas_config": json.dumps(config), "bpnas_quant_scheme": "bpnas-qdq-v1"},
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def layer_rows(size: int = 8) -> list[tuple[str, int, int, str]]:
    hw = size * size
    return [
        ("conv1", CHANNELS * 3 * 9 * hw, CHANNELS * 3 * 9, "conv"),
        ("conv2", CHANNELS * CHANNELS * 9 * hw, CHANNELS * CHANNELS * 9, "conv"),
        ("conv3", CHANNELS * CHANNELS * 9 * hw, CHANNELS * CHANNELS * 9, "conv"),
        ("fc", NUM_CLASSES * CHANNELS, NUM_CLASSES * CHANNELS, "linear"),
    ]


def make_bundle(
    root: Path,
    *,
    name: str = "tiny",
    pairs: Mapping[str, tuple[int, int]] | None = None,
    targets: Sequence[str] = ("onnxruntime", "openvino", "tvm", "integer"),
    size: int = 8,
    static_batch: int | None = None,
    preprocess: Mapping[str, Any] | None = PREPROCESS,
    labels: Sequence[str] | None = tuple(LABELS),
    seed: int = 0,
) -> Path:
    """Write ``root/<name>.bpnas`` (model.onnx + manifest.json) and return its path."""
    pairs = dict(pairs or {layer: (8, 8) for layer in LAYERS})
    bundle = Path(root) / f"{name}.bpnas"
    bundle.mkdir(parents=True)
    model = make_model(pairs, size=size, static_batch=static_batch, seed=seed)
    artifact = bundle / "model.onnx"
    onnx.save(model, artifact)
    report = report_from_layers(layer_rows(size), pairs)
    pre = None
    if preprocess is not None:
        pre = dict(preprocess)
        pre["size"] = [size, size]
    manifest = {
        "format": "bpnas-bundle",
        "format_version": 1,
        "name": name,
        "created_utc": "2026-11-24T04:00:00Z",
        "versions": {"bpnas": "0.1.0", "onnx": onnx.__version__},
        "input": {
            "name": "input",
            "shape": [static_batch, 3, size, size],
            "dtype": "float32",
            "layout": "NCHW",
        },
        "output": {"name": "logits", "shape": [static_batch, NUM_CLASSES], "dtype": "float32"},
        "preprocess": pre,
        "labels": list(labels) if labels is not None else None,
        "config": {"format_version": 1, "layers": {k: list(v) for k, v in pairs.items()}},
        "bops": report.to_dict(),
        "quant": {"scheme": "bpnas-qdq-v1", "per_channel": True, "residual_bits": 8, "output_bits": 8},
        "artifacts": {
            "model.onnx": {
                "sha256": sha256_file(artifact),
                "bytes": artifact.stat().st_size,
                "format": "onnx-qdq",
                "lowering": {"opset": 17},
            }
        },
        "targets": {t: {"artifact": "model.onnx"} for t in targets},
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return bundle


def reference(bundle: Path, x: np.ndarray) -> np.ndarray:
    """The ONNX reference evaluator's output for the bundle's model: the specification's numbers."""
    from onnx import version_converter
    from onnx.reference import ReferenceEvaluator

    # the evaluator implements QuantizeLinear/DequantizeLinear from opset 19 on; the ops' math is unchanged
    model = version_converter.convert_version(onnx.load(Path(bundle) / "model.onnx"), 21)
    return ReferenceEvaluator(model).run(None, {"input": x})[0]


def manifest_of(bundle: Path) -> Manifest:
    """The bundle's checked manifest, as ``sdk.load`` hands it to an adapter."""
    return read_manifest(bundle)


def random_input(n: int = 2, size: int = 8, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (n, 3, size, size)).astype(np.float32)
