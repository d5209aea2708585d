"""QONNX export, run through qonnx's own executor (ModelWrapper + execute_onnx): the same parity figure."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

import sdk
from export.passes.qonnx_quant import QONNX_DOMAIN, quant_attrs
from export.qonnx_export import to_qonnx
from sdk.quant import quant_layers
from tests.export._helpers import inputs, output_step, quantized

pytest.importorskip("qonnx")
pytestmark = pytest.mark.qonnx

SLOW = {"resnet18", "resnet50"}
N_INPUTS = 1000


def _execute(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for v in (fixed.graph.input[0], fixed.graph.output[0]):  # qonnx executes fixed shapes
        dim = v.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_value = x.shape[0]
    wrapper = ModelWrapper(fixed).transform(InferShapes())
    return execute_onnx(wrapper, {"input": x})["logits"]


def test_quant_attrs_cover_the_bpnas_code_ranges():
    for b in range(2, 9):
        assert quant_attrs(0, 2**b - 1) == (b, 0, 0)  # unsigned Clip-ReLU
        n = 2 ** (b - 1) - 1
        assert quant_attrs(-n, n) == (b, 1, 1)  # signed narrow (weights, residuals, the input)
    assert quant_attrs(-128, 127) == (8, 1, 0)
    assert quant_attrs(0, 12) is None


@pytest.mark.parametrize(
    ("name", "seed", "power_of_two"),
    [
        pytest.param(
            n, s, p2, marks=[pytest.mark.slow] if n in SLOW else [], id=f"{n}-cfg{s}-{'po2' if p2 else 'cal'}"
        )
        for n in sdk.models.names()
        for s, p2 in ((0, True), (1, False))
        if p2 or n not in SLOW  # the executor runs node by node; calibrated scales on the small models only
    ],
)
def test_qonnx_executor_parity(name: str, seed: int, power_of_two: bool, tmp_path) -> None:
    q, example = quantized(name, seed, power_of_two=power_of_two)
    path = tmp_path / "model.qonnx.onnx"
    to_qonnx(q, path, example)
    model = onnx.load(path)
    quants = [n for n in model.graph.node if n.op_type == "Quant"]
    assert quants and all(n.domain == QONNX_DOMAIN for n in quants)
    assert not {"QuantizeLinear", "DequantizeLinear"} & {n.op_type for n in model.graph.node}
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    weight_bits = {
        n.name.split("/")[0]: int(inits[n.input[3]]) for n in quants if n.name.endswith("/weight_quant")
    }
    assert weight_bits == {name: layer.bits[0] for name, layer in quant_layers(q)}
    x = inputs(name, N_INPUTS)
    with torch.no_grad():
        ref = q(torch.from_numpy(x)).numpy()
    out = _execute(model, x)
    agree = float((out.argmax(1) == ref.argmax(1)).mean())
    max_steps = float(np.abs(out - ref).max() / output_step(q))
    kind = "po2" if power_of_two else "calibrated"
    figure = f"top-1 {100 * agree:.1f}%, max |dlogit| {max_steps:.2f} steps"
    print(f"\n[qonnx parity] {name} cfg{seed} {kind}: {figure}")
    if power_of_two:
        np.testing.assert_array_equal(out, ref)
    else:
        assert agree >= 0.98
