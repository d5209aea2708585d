"""Test helpers for the integer runtime: BN-folded zoo models with random mixed configs, the torch fake-quant
codes at every quantizer matched to the ONNX quantizers through the graph, and an independent float64
evaluation of a QDQ graph (dequantize, compute, quantize) that gives its exact-arithmetic codes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn

import sdk
from calibration import fold_bn
from sdk.quant import ActQuantizer

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


def export_qdq(qmodel: nn.Module, input_shape: Sequence[int]) -> onnx.ModelProto:
    """The QDQ artifact of a (BN-folded) fake-quant model, from the exporter (DESIGN §4)."""
    from export.onnx_qdq import to_onnx

    return to_onnx(qmodel, None, torch.zeros(1, *input_shape))


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
