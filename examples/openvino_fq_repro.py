"""Minimal reproduction: OpenVINO's CPU plugin drops a residual operand's rounding (conv -> FQ -> Add -> FQ).

    python examples/openvino_fq_repro.py

One QDQ residual block, nothing from bpnas: ``a = Q/DQ_int8(conv(x))`` plus ``b = Q/DQ_uint8(relu(x))``,
summed and quantized to 4 bits. The spec (numpy, float64) rounds ``a`` to its int8 grid before the sum, as
ONNX QuantizeLinear says. OpenVINO fuses the conv, a's FakeQuantize, the Add and the 4-bit FakeQuantize into
one convolution with post-ops, and builds a's FakeQuantize there without its rounding (intel_cpu, conv
post-ops: "drop rounding one special residual pattern", applied when the FakeQuantize is the conv's first
post-op and a sum and another FakeQuantize follow). Its codes then equal the spec computed with ``a``
unrounded, up to float32 near-ties. Two identity rewrites restore the spec:

- ``LeakyRelu(alpha=1)`` between the conv and a's quantizer: fused as the conv's first post-op, so the
  FakeQuantize is second and keeps its rounding; the conv still fuses everything (bpnas's OpenVINO lowering,
  export/passes/residual_rounding.py);
- a 1x1 MaxPool between a's DequantizeLinear and the Add: the Add has no Convolution parent, so nothing is
  fused into a sum (an extra pooling node and a separate Add at run time).
"""

from __future__ import annotations

import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SX, SA, SB, SQ = 0.05, 0.0531, 0.0173, 0.377  # no common factors: the sums never land on a rounding tie
C = 8


VARIANTS = ("plain QDQ block", "LeakyRelu(alpha=1) between the conv and its quantizer",
            "1x1 MaxPool between a's DequantizeLinear and the Add")  # fmt: skip


def block(rng: np.random.Generator, variant: int) -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    """The residual block as QDQ ONNX; also its int8 weight codes and int32 bias codes (1x1 conv)."""
    w = rng.integers(-7, 8, (C, C, 1, 1)).astype(np.int8)
    bias = rng.integers(-50, 50, C).astype(np.int32)
    ws = np.float32(0.03)
    inits = [
        numpy_helper.from_array(np.float32(v), n) for n, v in
        (("sx", SX), ("sa", SA), ("sb", SB), ("sq", SQ), ("ws", ws), ("bs", np.float32(SX) * ws))
    ] + [
        numpy_helper.from_array(np.uint8(0), "u0"), numpy_helper.from_array(np.int8(0), "i0"),
        numpy_helper.from_array(np.int32(0), "z32"), numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(bias, "b"), numpy_helper.from_array(np.uint8(15), "hi"),
    ]  # fmt: skip
    n = helper.make_node
    nodes = [
        n("QuantizeLinear", ["x", "sx", "u0"], ["xq"]), n("DequantizeLinear", ["xq", "sx", "u0"], ["xd"]),
        n("DequantizeLinear", ["w", "ws", "i0"], ["wd"]), n("DequantizeLinear", ["b", "bs", "z32"], ["bd"]),
        n("Conv", ["xd", "wd", "bd"], ["conv"]),
        n("QuantizeLinear", ["conv1" if variant == 1 else "conv", "sa", "i0"], ["aq"]),
        n("DequantizeLinear", ["aq", "sa", "i0"], ["ad"]),
        n("Relu", ["x"], ["r"]),
        n("QuantizeLinear", ["r", "sb", "u0"], ["bq"]), n("DequantizeLinear", ["bq", "sb", "u0"], ["bdq"]),
        n("Add", ["ap" if variant == 2 else "ad", "bdq"], ["s"]),
        n("QuantizeLinear", ["s", "sq", "u0"], ["sq8"]), n("Clip", ["sq8", "u0", "hi"], ["s4"]),
        n("DequantizeLinear", ["s4", "sq", "u0"], ["y"]),
    ]  # fmt: skip
    if variant == 1:
        nodes.insert(5, n("LeakyRelu", ["conv"], ["conv1"], alpha=1.0))
    if variant == 2:
        nodes.insert(7, n("MaxPool", ["ad"], ["ap"], kernel_shape=[1, 1]))
    graph = helper.make_graph(
        nodes, "residual", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, C, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), w, bias


def spec_values(x: np.ndarray, w: np.ndarray, bias: np.ndarray, round_a: bool) -> np.ndarray:
    """The block's sum over its 4-bit scale in float64, before rounding (``round_a=False``: a left
    unrounded, OpenVINO's way)."""
    f32 = np.float32
    xc = np.clip(np.rint(x / f32(SX)), 0, 255)
    conv = np.einsum("nkhw,ck->nchw", xc, w[:, :, 0, 0].astype(np.float64)) + bias[None, :, None, None]
    conv *= float(f32(SX) * f32(0.03))
    a = np.clip(conv / float(f32(SA)), -128, 127)
    a = (np.rint(a) if round_a else a) * float(f32(SA))
    b = np.clip(np.rint(np.maximum(x, 0) / f32(SB)), 0, 255) * float(f32(SB))
    return (a + b) / float(f32(SQ))


def openvino_codes(model: onnx.ModelProto, x: np.ndarray) -> tuple[np.ndarray, str]:
    """OpenVINO's output codes (f32 inference precision) and the original layers of its runtime nodes."""
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1}
    compiled = core.compile_model(core.read_model(model.SerializeToString(), b""), "CPU", config)
    nodes = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) not in ("Input", "Output", "Const", "Reorder", "Reshape"):
            nodes.append(f"{info['layerType'].astype(str)}[{info['originalLayersNames'].astype(str)}]")
    return np.rint(compiled(x)[compiled.outputs[0]] / np.float32(SQ)), " ".join(nodes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16, help="inputs (each 8x16x16)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import onnxruntime as ort
    import openvino

    rng = np.random.default_rng(args.seed)
    x = (rng.standard_normal((args.n, C, 16, 16)) * 2).astype(np.float32)
    print(f"OpenVINO {openvino.__version__}, ONNX Runtime {ort.__version__}; {x.size} output codes per row")
    for variant, title in enumerate(VARIANTS):
        model, w, bias = block(np.random.default_rng(args.seed), variant)
        spec = np.clip(np.rint(spec_values(x, w, bias, True)), 0, 15)
        v = spec_values(x, w, bias, False)
        unrounded, ties = np.clip(np.rint(v), 0, 15), int((np.abs(v - np.floor(v) - 0.5) < 1e-6).sum())
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        ort_codes = np.rint(sess.run(None, {"x": x})[0] / np.float32(SQ))
        got, nodes = openvino_codes(model, x)
        print(f"\n{title}")
        print(f"  OpenVINO runs: {nodes}")
        print(f"  codes equal to the spec:          OpenVINO {100 * (got == spec).mean():7.3f}%   "
              f"ONNX Runtime {100 * (ort_codes == spec).mean():7.3f}%")  # fmt: skip
        print(f"  codes equal to 'a not rounded':   OpenVINO {100 * (got == unrounded).mean():7.3f}%   "
              f"({ties} of its values lie within 1e-6 of a .5 tie)")  # fmt: skip
        print(f"  max |OpenVINO - spec|: {np.abs(got - spec).max():.0f} code(s)")


if __name__ == "__main__":
    main()
