"""Hand-built ONNX graphs for the pass tests, and a way to run them (ORT with its own optimizations off)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

UINT8, INT8, INT32, FLOAT = TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32, TensorProto.FLOAT
_NP = {UINT8: np.uint8, INT8: np.int8, INT32: np.int32, FLOAT: np.float32}


class Builder:
    """Collects nodes and initializers; ``model()`` wraps them with input "x" (N, C, H, W) and output "y"."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._k = 0

    def name(self, hint: str) -> str:
        self._k += 1
        return f"{hint}{self._k}"

    def const(self, value: object, dtype: int = FLOAT, name: str | None = None) -> str:
        name = name or self.name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=_NP[dtype]), name))
        return name

    def node(
        self, op: str, inputs: Sequence[str], out: str | None = None, name: str = "", **attrs: object
    ) -> str:
        out = out or self.name(f"{op.lower()}_")
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=name or self.name(op), **attrs))
        return out

    def qcdq(
        self, x: str, scale: float, dtype: int, lo: int, hi: int, zp: int = 0, out: str | None = None
    ) -> str:
        s, z = self.const(scale), self.const(zp, dtype)
        q = self.node("QuantizeLinear", [x, s, z], name=self.name("q"))
        c = self.node("Clip", [q, self.const(lo, dtype), self.const(hi, dtype)], name=self.name("clip"))
        return self.node("DequantizeLinear", [c, s, z], out, name=self.name("dq"))

    def qweights(self, layer: str, shape: tuple[int, ...], x_scale: float, seed: int = 0) -> tuple[str, str]:
        """DESIGN §4 layer parameters: dequantized int8 weight codes of ``shape`` with per-output-channel
        scales, and int32 bias codes on the accumulator grid ``x_scale * w_scale``."""
        rng = np.random.default_rng(seed)
        cout = shape[0]
        ws = (rng.random(cout) * 0.05 + 0.01).astype(np.float32)
        codes = self.const(rng.integers(-7, 8, shape), INT8, f"{layer}.weight_codes")
        w = self.node("DequantizeLinear", [codes, self.const(ws), self.const(np.zeros(cout), INT8)], axis=0)
        bs = (np.float32(x_scale) * ws).astype(np.float32)
        b_codes, b_zp = self.const(rng.integers(-50, 50, cout), INT32), self.const(np.zeros(cout), INT32)
        return w, self.node("DequantizeLinear", [b_codes, self.const(bs), b_zp], axis=0)

    def qconv(
        self,
        x: str,
        layer: str,
        cin: int,
        cout: int,
        x_scale: float,
        *,
        k: int = 3,
        stride: int = 1,
        seed: int = 0,
        out: str | None = None,
    ) -> str:
        """A quantized conv reading dequantized ``x`` (parameters as :meth:`qweights`)."""
        w, b = self.qweights(layer, (cout, cin, k, k), x_scale, seed)
        pad = (k - 1) // 2
        return self.node("Conv", [x, w, b], out, name=layer, pads=[pad] * 4, strides=[stride] * 2)

    def qgemm(
        self, x: str, layer: str, cin: int, cout: int, x_scale: float, *, out: str | None = None
    ) -> str:
        """A quantized linear layer (``Gemm``, ``transB=1``) on dequantized ``x`` (see :meth:`qweights`)."""
        w, b = self.qweights(layer, (cout, cin), x_scale)
        return self.node("Gemm", [x, w, b], out, name=layer, transB=1)

    def model(self, c: int = 4, hw: int = 8, out_shape: Sequence[object] | None = None) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes,
            "g",
            [helper.make_tensor_value_info("x", FLOAT, ["N", c, hw, hw])],
            [helper.make_tensor_value_info("y", FLOAT, list(out_shape) if out_shape else None)],
            self.inits,
        )
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        m.ir_version = 10
        return m


def copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def data(c: int = 4, hw: int = 8, n: int = 4, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((n, c, hw, hw)) * scale).astype(np.float32)


def ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]
