"""The tensorrt/jetson artifact run by ONNX Runtime agrees with the fake-quant model quantized for TensorRT.

Every zoo model x 3 random mixed configs (as ``test_parity``), quantized with ``target="tensorrt"`` (unsigned
activations capped at 7 bits of codes), lowered by ``tests.export._tensorrt.lower_tensorrt`` and run on ONNX
Runtime's CPU provider: top-1 agreement with the float64 evaluation of the model (DESIGN §2) >= 99.9%, the
figure the other targets meet. Printed: ``pytest -s -k tensorrt_parity``. TensorRT itself needs a GPU
(``examples/gpu_smoke_tensorrt.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sdk
from export.onnx_qdq import Traced
from tests.export._helpers import float64_model, inputs, output_step, quantized, run_ort
from tests.export._tensorrt import lower_tensorrt

SLOW = {"resnet18", "resnet50"}
CASES = [
    pytest.param(name, seed, marks=[pytest.mark.slow] if name in SLOW else [], id=f"{name}-cfg{seed}")
    for name in sdk.models.names()
    for seed in (0, 1, 2)
]
N_INPUTS = 1000


@pytest.mark.parametrize(("name", "seed"), CASES)
def test_tensorrt_parity_on_onnxruntime_against_the_float64_spec(name: str, seed: int) -> None:
    q, example = quantized(name, seed, target="tensorrt")
    x = inputs(name, N_INPUTS)
    with torch.no_grad():
        ref = float64_model(q)(torch.from_numpy(x).double()).numpy()
    out = run_ort(lower_tensorrt(Traced(q, example)), x)
    top1 = float((out.argmax(1) == ref.argmax(1)).mean())
    steps = float(np.abs(out - ref).max() / output_step(q))
    print(
        f"\n[tensorrt parity] {name} cfg{seed}: ORT top-1 {100 * top1:.1f}% vs float64, max {steps:.2f} steps"
    )
    assert top1 >= 0.999, f"top-1 equals float64's on {100 * top1:.1f}% of inputs"
