"""Test helpers for the integer runtime: a reference QDQ exporter (DESIGN §4) for BN-folded zoo models, and
the torch fake-quant codes at every quantizer, matched to the ONNX quantizers through the graph.

The exporter traces the quantized model with torch.fx (quant modules as leaves) and writes each quantizer as
QuantizeLinear -> integer Clip (omitted at the container's full range) -> DequantizeLinear, int8 weight codes
with per-channel scales, int32 bias codes with scale ``s_in * s_w``; Conv/Gemm nodes are named after the
layers.
Used until ``export.to_onnx`` lands; the parity test prefers the real exporter when it exists.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

import sdk
from calibration import fold_bn
from calibration.bn_fold import trace
from sdk.quant import ActQuantizer, QuantAdd, QuantConv2d, QuantLinear, code_range

PAIRS = ((2, 4), (3, 3), (4, 4), (4, 6), (6, 4), (8, 8), (3, 5))


def zoo_input_shape(name: str) -> tuple[int, int, int]:
    """Small inputs: the digits CNN at 8x8 with one channel, every other model at 3x32x32."""
    return (1, 8, 8) if name == "digits_cnn" else (3, 32, 32)


def build_quantized(name: str, seed: int, *, calib: int = 16) -> tuple[nn.Module, dict[str, tuple[int, int]]]:
    """A zoo model with random BN statistics, quantized with a random mixed config, calibrated, BN folded.

    Activation alphas initialised from one batch are data quantiles, so one channel's scale ratio is an exact
    small rational and its values sit exactly on rounding ties, where float32 noise decides; they are
    jittered by up to 10% afterwards, as training would move them.
    """
    torch.manual_seed(seed)
    model = sdk.models.create(name, num_classes=10, **({"in_channels": 1} if name == "digits_cnn" else {}))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    model.eval()
    rng = random.Random(seed)
    layers = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    config = {n: rng.choice(PAIRS) for n in layers}
    q = sdk.quantize(model, config).eval()
    x = torch.randn(calib, *zoo_input_shape(name))
    with torch.no_grad():
        q(x)  # activation quantizers initialise signedness and alpha from this batch
        gen = torch.Generator().manual_seed(seed)
        for m in q.modules():
            if isinstance(m, ActQuantizer):
                m.alpha.mul_(0.9 + 0.2 * torch.rand((), generator=gen))
    return fold_bn(q).eval(), config


class _Writer:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0

    def init(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: Sequence[str], output: str, name: str | None = None, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, list(inputs), [output], name=name or output, **attrs))
        return output

    def qcdq(self, x: str, prefix: str, q: ActQuantizer) -> str:
        lo, hi = q.range
        dtype, full = (np.int8, (-128, 127)) if q.signed else (np.uint8, (0, 255))
        s = self.init(f"{prefix}.scale", np.array(q.scale().detach().numpy(), np.float32))
        z = self.init(f"{prefix}.zero_point", np.array(0, dtype))
        out = self.node("QuantizeLinear", [x, s, z], f"{prefix}.q")
        if (lo, hi) != full:
            lo_t = self.init(f"{prefix}.lo", np.array(lo, dtype))
            hi_t = self.init(f"{prefix}.hi", np.array(hi, dtype))
            out = self.node("Clip", [out, lo_t, hi_t], f"{prefix}.clip")
        return self.node("DequantizeLinear", [out, s, z], f"{prefix}.dq")

    def layer(self, x: str, name: str, m: QuantConv2d | QuantLinear) -> str:
        x = self.qcdq(x, f"{name}.act_quant", m.act_quant)
        with torch.no_grad():
            codes = m.weight_quant.codes(m.weight).numpy().astype(np.int8)
            s_w = m.weight_quant.scale().detach().numpy().astype(np.float32)
            s_b = (m.act_quant.scale() * m.weight_quant.scale()).detach().numpy().astype(np.float32)
        w = self.node(
            "DequantizeLinear",
            [self.init(f"{name}.weight_q", codes), self.init(f"{name}.weight_scale", s_w),
             self.init(f"{name}.weight_zp", np.zeros(s_w.shape, np.int8))],
            f"{name}.weight_dq", axis=0,
        )  # fmt: skip
        inputs = [x, w]
        if m.bias is not None:
            with torch.no_grad():
                bq = torch.clamp(torch.round(m.bias / torch.from_numpy(s_b)), -(2**31) + 1, 2**31 - 1)
            b = self.node(
                "DequantizeLinear",
                [self.init(f"{name}.bias_q", bq.numpy().astype(np.int32)),
                 self.init(f"{name}.bias_scale", s_b),
                 self.init(f"{name}.bias_zp", np.zeros(s_b.shape, np.int32))],
                f"{name}.bias_dq", axis=0,
            )  # fmt: skip
            inputs.append(b)
        if isinstance(m, QuantConv2d):
            pad_h, pad_w = m.padding  # type: ignore[misc]
            out = self.node(
                "Conv", inputs, f"{name}.out", name=name, kernel_shape=list(m.kernel_size),
                strides=list(m.stride), pads=[pad_h, pad_w, pad_h, pad_w], dilations=list(m.dilation),
                group=m.groups,
            )  # fmt: skip
        else:
            out = self.node("Gemm", inputs, f"{name}.out", name=name, transB=1)
        if m.out_quant is not None:
            out = self.qcdq(out, f"{name}.out_quant", m.out_quant)
        return out


def reference_export(qmodel: nn.Module, input_shape: Sequence[int]) -> onnx.ModelProto:
    """The QDQ ONNX graph (DESIGN §4) of a BN-folded fake-quant model built from zoo-style modules."""
    graph = trace(qmodel)
    modules = dict(qmodel.named_modules())
    w = _Writer()
    names: dict[str, str] = {}
    out_name = ""
    for node in graph.nodes:
        if node.op == "placeholder":
            names[node.name] = "input"
            continue
        if node.op == "output":
            out_name = names[node.args[0].name]  # type: ignore[union-attr]
            continue
        if node.op != "call_module":
            raise NotImplementedError(f"reference exporter: {node.op} {node.target}")
        target = str(node.target)
        m = modules[target]
        args = [names[a.name] for a in node.args]  # type: ignore[union-attr]
        if isinstance(m, (QuantConv2d, QuantLinear)):
            y = w.layer(args[0], target, m)
        elif isinstance(m, QuantAdd):
            a = w.qcdq(args[0], f"{target}.quant_a", m.quant_a)
            b = w.qcdq(args[1], f"{target}.quant_b", m.quant_b)
            y = w.node("Add", [a, b], f"{target}.out", name=target)
        elif isinstance(m, nn.ReLU6):
            lo, hi = (
                w.init(f"{target}.min", np.array(0, np.float32)),
                w.init(f"{target}.max", np.array(6, np.float32)),
            )
            y = w.node("Clip", [args[0], lo, hi], f"{target}.out", name=target)
        elif isinstance(m, nn.ReLU):
            y = w.node("Relu", args, f"{target}.out", name=target)
        elif isinstance(m, nn.MaxPool2d):
            k, s, p = (m.kernel_size, m.stride, m.padding)
            y = w.node("MaxPool", args, f"{target}.out", name=target, kernel_shape=[k, k], strides=[s, s],
                       pads=[p, p, p, p])  # fmt: skip
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            y = w.node("GlobalAveragePool", args, f"{target}.out", name=target)
        elif isinstance(m, nn.Flatten):
            y = w.node("Flatten", args, f"{target}.out", name=target, axis=1)
        elif isinstance(m, (nn.Identity, nn.Dropout)):
            y = args[0]
        else:
            raise NotImplementedError(f"reference exporter: {type(m).__name__} at {target}")
        names[node.name] = y
    w.node("Identity", [out_name], "logits")
    graph_proto = helper.make_graph(
        w.nodes,
        "bpnas_reference",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *input_shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", None])],
        w.inits,
    )
    model = helper.make_model(graph_proto, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, {"bpnas_quant_scheme": "bpnas-qdq-v1", "bpnas_config": json.dumps({})})
    return model


def export_qdq(qmodel: nn.Module, input_shape: Sequence[int]) -> onnx.ModelProto:
    """The real exporter once it exists, else the reference one."""
    try:
        from export.onnx_qdq import to_onnx  # type: ignore[import-not-found]
    except ImportError:
        return reference_export(qmodel, input_shape)
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.onnx")
        to_onnx(qmodel, path, torch.zeros(1, *input_shape))
        return onnx.load(path)


@torch.no_grad()
def torch_codes(qmodel: nn.Module, x: torch.Tensor) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Codes every ActQuantizer of ``qmodel`` produces on ``x`` (by module name), and the logits."""
    codes: dict[str, np.ndarray] = {}
    hooks = []
    for name, m in qmodel.named_modules():
        if isinstance(m, ActQuantizer):

            def hook(mod: ActQuantizer, inp: tuple[torch.Tensor, ...], name: str = name) -> None:
                codes[name] = mod.codes(inp[0]).numpy()

            hooks.append(m.register_forward_pre_hook(hook))
    try:
        logits = qmodel(x).numpy()
    finally:
        for h in hooks:
            h.remove()
    return codes, logits


def torch_quantizer_for(info: Any, last_layer: str) -> list[str]:
    """The torch ActQuantizer module names an ONNX quantizer stands for, from where its codes go."""
    names = []
    for node, op_type, index in info.consumers:
        if op_type in ("Conv", "Gemm", "MatMul"):
            names.append(f"{node}.act_quant")
        elif op_type == "Add":
            names.append(f"{node}.quant_{'ab'[index]}")
    if not names and info.source == last_layer:
        names.append(f"{last_layer}.out_quant")
    return names


def check_code_range(codes: np.ndarray, q: ActQuantizer) -> bool:
    lo, hi = code_range(q.bits, q.signed)
    return bool(codes.min() >= lo and codes.max() <= hi)


def float64_codes(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    """Codes at every QuantizeLinear (after its integer Clip) from a plain float64 evaluation of the graph:
    dequantize, compute, quantize, with no integer tricks. Agrees with exact arithmetic to ~1e-15."""
    import torch.nn.functional as F

    vals: dict[str, Any] = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    vals["input"] = x.astype(np.float64)
    codes: dict[str, np.ndarray] = {}
    q_outputs: dict[str, str] = {}  # tensor -> the quantizer it holds codes of

    def t(name: str) -> torch.Tensor:
        return torch.from_numpy(np.asarray(vals[name], dtype=np.float64))

    for node in model.graph.node:
        at = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        ins, out, op = list(node.input), node.output[0], node.op_type
        if op == "QuantizeLinear":
            dt = vals[ins[2]].dtype if len(ins) > 2 else np.uint8
            info = np.iinfo(dt)
            y = np.clip(np.rint(vals[ins[0]] / np.float64(vals[ins[1]])), info.min, info.max)
            codes[out] = y
            q_outputs[out] = out
        elif op == "Clip":
            lo = vals[ins[1]] if len(ins) > 1 and ins[1] else -np.inf
            hi = vals[ins[2]] if len(ins) > 2 and ins[2] else np.inf
            y = np.clip(vals[ins[0]], np.float64(lo), np.float64(hi))
            if ins[0] in q_outputs:
                codes[q_outputs[ins[0]]] = y
                q_outputs[out] = q_outputs[ins[0]]
        elif op == "DequantizeLinear":
            q, s = np.asarray(vals[ins[0]], np.float64), np.asarray(vals[ins[1]], np.float64)
            axis = int(at.get("axis", 1))
            y = q * (s.reshape([-1 if i == axis else 1 for i in range(q.ndim)]) if s.size > 1 else s)
        elif op == "Conv":
            b = t(ins[2]) if len(ins) > 2 else None
            p = at.get("pads", [0, 0, 0, 0])
            y = F.conv2d(t(ins[0]), t(ins[1]), b, stride=at.get("strides", 1), padding=(p[0], p[1]),
                         dilation=at.get("dilations", 1), groups=at.get("group", 1)).numpy()  # fmt: skip
        elif op == "Gemm":
            y = vals[ins[0]] @ (vals[ins[1]].T if at.get("transB", 0) else vals[ins[1]])
            y = y + vals[ins[2]] if len(ins) > 2 else y
        elif op == "MatMul":
            y = vals[ins[0]] @ vals[ins[1]]
        elif op == "AveragePool":
            k, s, p = at["kernel_shape"], at.get("strides", [1, 1]), at.get("pads", [0, 0, 0, 0])
            y = F.avg_pool2d(t(ins[0]), k, s, (p[0], p[1]), count_include_pad=True).numpy()
        elif op == "ReduceMean":
            y = vals[ins[0]].mean(axis=tuple(at.get("axes", (2, 3))), keepdims=bool(at.get("keepdims", 1)))
        elif op in ("Reshape", "Squeeze"):
            y = vals[ins[0]].reshape(vals[ins[0]].shape[0], -1)
        elif op == "Relu":
            y = np.maximum(vals[ins[0]], 0)
        elif op == "Add":
            y = vals[ins[0]] + vals[ins[1]]
        elif op == "MaxPool":
            k, s, p = at["kernel_shape"], at.get("strides", [1, 1]), at.get("pads", [0, 0, 0, 0])
            y = F.max_pool2d(t(ins[0]), k, s, (p[0], p[1])).numpy()
        elif op == "GlobalAveragePool":
            y = vals[ins[0]].mean(axis=(2, 3), keepdims=True)
        elif op == "Flatten":
            y = vals[ins[0]].reshape(vals[ins[0]].shape[0], -1)
        elif op == "Identity":
            y = vals[ins[0]]
        else:
            raise NotImplementedError(op)
        vals[out] = y
    return {k: v.astype(np.int32) for k, v in codes.items()}
