"""Find the first quantizer where OpenVINO's codes leave ONNX Runtime's on one QDQ artifact.

    python examples/openvino_bisect.py runs/det.bpnas/model-op17-....onnx --n 64

Each activation DequantizeLinear's output in turn becomes an extra graph output, and the model runs on both
engines (OpenVINO at f32 inference precision, one thread each); the row says how many of that quantizer's
codes agree and by how many steps they differ at most. An extra output changes OpenVINO's fusion at that
tensor only (its producer gets a second reader); cutting the graph there instead would also drop the other
readers of upstream tensors and so create fusions the full graph does not have. Inputs: the synthetic
detection scenes (``--size`` pixels) or, with ``--random``, normal noise of the artifact's input shape.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper


def tap(model: onnx.ModelProto, tensor: str) -> onnx.ModelProto:
    """A copy of ``model`` that also outputs ``tensor`` (its last output)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    out.graph.output.append(helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, None))
    return out


def inputs(model: onnx.ModelProto, n: int, size: int, random: bool) -> np.ndarray:
    if random:
        dims = [d.dim_value or n for d in model.graph.input[0].type.tensor_type.shape.dim]
        return np.random.default_rng(0).standard_normal([n, *dims[1:]]).astype(np.float32)
    import sdk

    _, val = sdk.data.shapes(n_train=8, n_val=n, size=size, seed=0)
    return np.stack([val[i][0] for i in range(len(val))]).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifact", type=Path, help="a QDQ ONNX artifact (e.g. a bundle's openvino model)")
    ap.add_argument("--n", type=int, default=64, help="inputs")
    ap.add_argument("--size", type=int, default=64, help="scene size for the detection inputs")
    ap.add_argument("--random", action="store_true", help="normal noise instead of detection scenes")
    args = ap.parse_args()
    import onnxruntime as ort
    import openvino as ov

    ort.set_default_logger_severity(3)
    model = onnx.load(str(args.artifact))
    x = inputs(model, args.n, args.size, args.random)
    feed = {model.graph.input[0].name: x}
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    core = ov.Core()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    for dq in model.graph.node:
        if dq.op_type != "DequantizeLinear" or dq.input[0] in consts:
            continue
        part = tap(model, dq.output[0]).SerializeToString()
        want = ort.InferenceSession(part, so, providers=["CPUExecutionProvider"]).run(None, feed)[-1]
        config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1}
        compiled = core.compile_model(core.read_model(part, b""), "CPU", config)
        got = compiled(x)[compiled.outputs[-1]]
        scale = float(consts[dq.input[1]])
        diff = np.abs(np.rint(got / scale) - np.rint(want / scale))
        print(f"{dq.name:<45} equal {100 * (diff == 0).mean():8.3f}%   max {diff.max():3.0f} step(s)")


if __name__ == "__main__":
    main()
