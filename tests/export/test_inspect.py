"""What ORT and OpenVINO really run: the issue's 2-conv measurement and no float fallback on the zoo."""

from __future__ import annotations

import onnx
import pytest
import torch
from torch import nn

import sdk
import targets
from export.inspect import float_layers, openvino_precision_report, ort_kernel_report
from export.onnx_qdq import Traced, to_onnx
from export.options import DEFAULT_PASSES, LoweringOptions
from tests.export._helpers import layer_names, quantized

ORT = LoweringOptions((*DEFAULT_PASSES, "uint8_activations", "integer_ops"))
OPENVINO = LoweringOptions((*DEFAULT_PASSES, "uint8_activations", "slice_strided_pointwise"))
OPENVINO_TARGET = LoweringOptions(targets.get("openvino").lowering)
SLOW = {"resnet18", "resnet50"}


def _two_conv() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1)).eval()
    q = sdk.quantize(model, {"0": (4, 4), "2": (3, 5)}).eval()
    with torch.no_grad():
        q(torch.randn(32, 3, 8, 8))
    return q, torch.randn(1, 3, 8, 8)


def _optimized_ops(model: onnx.ModelProto, tmp_path) -> list[tuple[str, int | None]]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    opt = onnx.load(so.optimized_model_filepath)
    types = {t.name: t.data_type for t in opt.graph.initializer}
    return [(n.op_type, types.get(n.input[1]) if n.op_type == "Clip" else None) for n in opt.graph.node]


def test_qcdq_keeps_both_convs_on_qlinearconv_and_a_float_clip_does_not(tmp_path):
    q, x = _two_conv()
    traced = Traced(q, x)
    qcdq = traced.lower(ORT)
    assert {k: (v.kernel, v.precision) for k, v in ort_kernel_report(qcdq).items()} == {
        "0": ("QLinearConv", "u8"),
        "2": ("QLinearConv", "u8"),
    }
    assert ("Clip", onnx.TensorProto.UINT8) in _optimized_ops(qcdq, tmp_path)  # the cheap integer Clip stays
    float_clip = traced.lower(LoweringOptions((*DEFAULT_PASSES[1:], "uint8_activations", "float_clip")))
    assert ort_kernel_report(float_clip)["0"].kernel == "FusedConv"
    assert float_layers(ort_kernel_report(float_clip)) == ["0", "2"]


def test_mixed_int8_uint8_containers_fall_back_on_ort():
    """Why ORT gets uint8 activations: with DESIGN's default containers a conv reading uint8 and writing a
    signed (int8) residual operand cannot fuse."""
    q, x = quantized("resnet20", 0)
    natural = to_onnx(q, None, x)
    assert float_layers(ort_kernel_report(natural), layer_names(q))
    assert float_layers(ort_kernel_report(to_onnx(q, None, x, options=ORT)), layer_names(q)) == []


def test_openvino_runs_the_two_conv_graph_in_u8():
    pytest.importorskip("openvino")
    q, x = _two_conv()
    traced = Traced(q, x)
    for options in (ORT, OPENVINO, LoweringOptions((*DEFAULT_PASSES[1:], "uint8_activations", "float_clip"))):
        report = openvino_precision_report(traced.lower(options))
        assert {k: (v.kernel, v.precision) for k, v in report.items()} == {
            "0": ("Convolution", "u8"),
            "2": ("Convolution", "u8"),
        }


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW else []) for n in sdk.models.names()]
)
def test_no_float_fallback_on_openvino(name: str) -> None:
    pytest.importorskip("openvino")
    q, x = quantized(name, 1)
    traced = Traced(q, x)
    report = openvino_precision_report(traced.lower(OPENVINO_TARGET))
    assert float_layers(report, layer_names(q)) == []
    # without the strided-1x1 rewrite OpenVINO runs ResNet downsample shortcuts in f32
    strided = [
        n
        for n, m in q.named_modules()
        if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.stride != (1, 1)
    ]
    if strided:
        plain = openvino_precision_report(
            traced.lower(
                LoweringOptions(tuple(p for p in OPENVINO_TARGET.passes if p != "slice_strided_pointwise"))
            )
        )
        assert set(float_layers(plain, layer_names(q))) == set(strided)
