"""Prototype (not the shipped semantics): one 8-bit quantizer per ResNet block input, convs requantizing it.

    PYTHONPATH=. .venv/bin/python docs/experiments/residual_requant.py OUT.bpnas

Builds bench_deploy's ResNet-18 224 mixed configuration, PTQ-calibrates it, then patches every BasicBlock so
the block input is quantized once at 8 bits (the identity skip reads those codes; conv1 and the downsample
conv requantize them to their a bits) and exports a bundle for ONNX Runtime and OpenVINO. Time it against
bench_deploy's uniform (8, 8) bundle to see what the single-quantizer scheme would buy (DESIGN §2): measured
in session 3, ORT mixed/(8,8) 1.17x -> 1.05x, OpenVINO 1.27x -> 1.29x. Downsample blocks get an uncalibrated
input quantizer (alpha copied from conv1's): good for timing, not for accuracy.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

import bench_deploy as bd  # noqa: E402

import calibration  # noqa: E402
import sdk  # noqa: E402
from sdk.models.resnet import BasicBlock  # noqa: E402
from sdk.quant.quantizers import ActQuantizer  # noqa: E402


def _forward(self: BasicBlock, x: torch.Tensor) -> torch.Tensor:
    x8 = self.in_quant(x)
    out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x8)))))
    if isinstance(self.downsample, nn.Identity):
        return self.relu2(self.add.quant_a(out) + x8)
    return self.relu2(self.add.quant_a(out) + self.add.quant_b(self.downsample(x8)))


def main(out: str) -> None:
    model = bd.build_model(224)
    batches = bd.calib_batches(224)
    q = calibration.ptq(model, bd.mixed_config(model), batches).eval()
    for m in q.modules():
        if isinstance(m, BasicBlock):
            if isinstance(m.downsample, nn.Identity):
                m.in_quant = m.add.quant_b
            else:
                m.in_quant = ActQuantizer(8, signed=False)
                with torch.no_grad():
                    m.in_quant.alpha.copy_(m.conv1.act_quant.alpha.abs())
                    m.in_quant.initialized.fill_(True)
            m.forward = types.MethodType(_forward, m)
    print(sdk.export(q, out, example_input=batches[0][:1], targets=["onnxruntime", "openvino"]))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "r18_requant.bpnas")
