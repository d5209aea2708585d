"""Inspector JSON -> what each conv/GEMM runs, in TensorRT 10.x's combined and TensorRT 11's split layout.

The samples are constructed in the documented layouts (keys as in trtexec --exportLayerInfo; the 11 split
as in NVIDIA/TensorRT's trt-perf-analysis schema: per tensor "Format" and "Datatype"), not captured."""

from __future__ import annotations

import json

import pytest

from runtimes._tensorrt_inspect import bpnas_layer_name, inspector_layers, json_layout, layer_precisions
from runtimes.base import LayerPrecision

INT8_VEC = ("Thirty-two wide channel vectorized row major", "Int8")
FP32 = ("Row major linear", "Float")
FP16_CH8 = ("Channel major format where channel % 8 == 0", "Half")


def _tensor(name, fmt, layout):
    layout_fmt, dtype = fmt
    base = {"Name": name, "Location": "Device", "Dimensions": [8, 16, 8, 8]}
    if layout == "split":
        return {**base, "Format": layout_fmt, "Datatype": dtype}
    return {**base, "Format/Datatype": f"{layout_fmt} {dtype}"}


def _conv(layout, name, in_fmt, weights, layer_type="CaskConvolution", **extra):
    layer = {"Name": name, "LayerType": layer_type, "Inputs": [_tensor("a", in_fmt, layout)],
             "Outputs": [_tensor("b", FP32, layout)], "ParameterType": "Convolution", "Kernel": [3, 3],
             "Bias": {"Type": "Float", "Count": 16}, "TacticName": "sm86_xmma_fprop"}  # fmt: skip
    if weights is not None:
        layer["Weights"] = {"Type": weights, "Count": 432}
    return {**layer, **extra}


def _engine_json(layout: str) -> str:
    t = lambda n, f: _tensor(n, f, layout)  # noqa: E731
    layers = [
        {"Name": "QuantizeLinear_2", "LayerType": "Reformat", "ParameterType": "Reformat", "Origin": "QDQ",
         "Inputs": [t("input", FP32)], "Outputs": [t("input_q", INT8_VEC)]},
        _conv(layout, "stem.weight + Conv_3", FP32, "Float"),
        _conv(layout, "conv1.weight + QuantizeLinear_7 + Conv_9 + Relu_10", INT8_VEC, "Int8"),
        _conv(layout, "layer1.0.conv1.weight + QuantizeLinear_20 + Conv_22", FP16_CH8, "Half"),
        _conv(layout, "layer1.0.dw.weight + QuantizeLinear_30 + Conv_32", INT8_VEC, "Int8",
              layer_type="CudaDepthwiseConvolution"),
        _conv(layout, "conv0.weight + QuantizeLinear_5 + Conv_6 + MaxPool_12", INT8_VEC, None,
              layer_type="ConvActPool", ParameterType="ConvActPool"),
        {"Name": "MaxPool_40", "LayerType": "TiledPooling", "ParameterType": "Pooling",
         "Inputs": [t("p", INT8_VEC)], "Outputs": [t("q", INT8_VEC)]},
        {"Name": "{ForeignNode[/layer2/conv/Conv.../layer3/conv/Conv]}", "LayerType": "Myelin",
         "Inputs": [t("m", FP16_CH8)], "Outputs": [t("n", FP16_CH8)], "TacticName": "myelin"},
        _conv(layout, "fc.weight + QuantizeLinear_309 + Gemm_311 + fc.bias", INT8_VEC, "Int8"),
    ]  # fmt: skip
    return json.dumps({"Layers": layers, "Bindings": ["input", "logits"]})


EXPECTED = [
    LayerPrecision("stem", "CaskConvolution", "f32", upcast=False),  # deployed float: not an upcast
    LayerPrecision("conv1", "CaskConvolution", "i8", upcast=False),
    LayerPrecision("layer1.0.conv1", "CaskConvolution", "f16", upcast=True),  # Q/DQ did not fuse
    LayerPrecision("layer1.0.dw", "CudaDepthwiseConvolution", "i8", upcast=False),
    LayerPrecision("conv0", "ConvActPool", "i8", upcast=False),  # no "Weights": input type decides
    LayerPrecision("{ForeignNode[/layer2/conv/Conv.../layer3/conv/Conv]}", "Myelin", "unknown", False),
    LayerPrecision("fc", "CaskConvolution", "i8", upcast=False),
]


@pytest.mark.parametrize(("layout", "name"), [("combined", "combined"), ("split", "split")])
def test_both_layouts_give_the_same_table(layout, name):
    info = _engine_json(layout)
    assert json_layout(info) == name
    assert layer_precisions(info, float_layers={"stem"}) == EXPECTED


def test_bare_list_root_is_read_too():
    layers = json.loads(_engine_json("split"))["Layers"]
    assert inspector_layers(layers) == layers
    assert layer_precisions(layers, float_layers={"stem"}) == EXPECTED


def test_unresolved_types_are_unknown_not_guessed_from_weights():
    """Read without the execution context, dynamic shapes report "N/A": the weights alone don't decide."""
    combined = _conv("combined", "c.weight + Conv_1", ("Row major linear", "N/A"), "Int8")
    split = _conv("split", "c.weight + Conv_1", ("Row major linear", "N/A"), "Int8")
    for layer in (combined, split):
        assert layer_precisions({"Layers": [layer]}) == [
            LayerPrecision("c", "CaskConvolution", "unknown", False)
        ]


def test_float_weights_on_int8_input_is_an_upcast():
    info = {"Layers": [_conv("split", "c.weight + Conv_1", INT8_VEC, "Float")]}
    assert layer_precisions(info) == [LayerPrecision("c", "CaskConvolution", "f32", True)]


def test_names_only_yields_nothing():
    info = json.dumps({"Layers": ["conv1.weight + QuantizeLinear_7 + Conv_9", "MaxPool_12"], "Bindings": []})
    assert json_layout(info) == "names-only"
    assert layer_precisions(info) == []


@pytest.mark.parametrize(
    ("engine_name", "known", "expected"),
    [
        ("layer1.0.conv1.weight + QuantizeLinear_20 + Conv_22", None, "layer1.0.conv1"),
        ("fc.weight + QuantizeLinear_309 + Gemm_311 + fc.bias", None, "fc"),
        ("/layer1/layer1.0/conv1/Conv + /layer1/layer1.0/relu/Relu", None, "layer1.0.conv1"),
        ("/layer1/layer1.0/conv1/Conv", ["conv1", "layer1.0.conv1"], "layer1.0.conv1"),
        ("/layer1/0/conv1/Conv", ["conv1", "layer1.0.conv1"], "layer1.0.conv1"),
        ("conv1.weight + QuantizeLinear_7 + Conv_9", ["conv1", "layer1.0.conv1"], "conv1"),
        ("Conv_9 + Relu_10", None, "Conv_9 + Relu_10"),
        ("layer1.0.conv1.w + /layer1.0.conv1/DQ + layer1.0.conv1", ["layer1.0.conv1"], "layer1.0.conv1"),
        ("layer1.0.conv1 + /relu/Relu", ["layer1.0.conv1", "relu"], "layer1.0.conv1"),
        ("layer1.0.conv1 + /relu/Relu", None, "layer1.0.conv1 + /relu/Relu"),  # no guessing without names
        ("other.weight + Conv_1", ["conv1"], "other.weight + Conv_1"),
    ],
)
def test_bpnas_layer_name(engine_name, known, expected):
    assert bpnas_layer_name(engine_name, known) == expected
