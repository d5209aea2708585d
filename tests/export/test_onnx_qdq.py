"""The ONNX QDQ artifact follows DESIGN §4, and each LoweringOptions variant does what it says."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto
from torch import nn

import calibration
import sdk
from export._graph import Graph
from export._qdq import act_chains, quant_params
from export._standin import standin_model
from export.onnx_qdq import Traced, to_onnx
from export.options import DEFAULT_PASSES, LoweringOptions
from sdk.errors import ConfigError, InputError
from sdk.quant import QuantConv2d, QuantLinear, config_of, quant_layers
from tests.export._helpers import inputs, output_step, quantized, run_ort


@pytest.fixture(scope="module")
def resnet20():
    return quantized("resnet20", 1)


def test_structure_follows_design_section_4(resnet20, tmp_path):
    q, x = resnet20
    path = tmp_path / "model.onnx"
    to_onnx(q, path, x)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    assert next(o.version for o in model.opset_import if o.domain == "") == 17
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "input" and out.name == "logits"
    assert inp.type.tensor_type.elem_type == TensorProto.FLOAT
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["N", 3, 16, 16]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["N", 10]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["bpnas_quant_scheme"] == "bpnas-qdq-v1" and meta["bpnas_version"] == sdk.__version__
    assert json.loads(meta["bpnas_config"]) == config_of(q).to_dict()

    graph = Graph(model)
    nodes = {n.name: n for n in model.graph.node}
    for name, layer in quant_layers(q):
        node = nodes[name]  # Conv/Gemm node names are the layer names
        assert node.op_type == ("Conv" if isinstance(layer, QuantConv2d) else "Gemm")
        w_bits, _ = layer.bits
        w_dq = graph.producer[node.input[1]]
        codes = graph.const(w_dq.input[0])
        wp = quant_params(graph, w_dq)
        assert codes is not None and codes.dtype == np.int8 and wp is not None
        n = 2 ** (w_bits - 1) - 1
        assert codes.min() >= -n and codes.max() <= n
        np.testing.assert_array_equal(codes, layer.weight_quant.codes(layer.weight).numpy())
        assert wp.axis == 0 and not wp.zero_point.any() and wp.dtype == TensorProto.INT8
        np.testing.assert_array_equal(wp.scale, layer.weight_quant.scale().detach().numpy())
        if layer.bias is not None:
            b_dq = graph.producer[node.input[2]]
            bp = quant_params(graph, b_dq)
            assert graph.const(b_dq.input[0]).dtype == np.int32  # type: ignore[union-attr]
            s_in = layer.act_quant.scale().detach().numpy()
            np.testing.assert_array_equal(bp.scale, s_in * layer.weight_quant.scale().detach().numpy())  # type: ignore[union-attr]
        x_dq = graph.producer[node.input[0]]
        assert x_dq.op_type == "DequantizeLinear"
    for chain in act_chains(graph):
        zp = int(chain.params.zero_point)
        signed = chain.params.dtype == TensorProto.INT8
        assert zp == 0 and (chain.lo < 0) == signed
        if chain.clip is None:
            assert (chain.lo, chain.hi) in ((0, 255), (-128, 127))
        else:
            assert chain.lo == -chain.hi if signed else chain.lo == 0


def test_standin_model_computes_the_fake_quant_model_bit_for_bit(resnet20):
    q, _ = resnet20
    x = torch.from_numpy(inputs("resnet20", 64))
    with torch.no_grad():
        assert torch.equal(standin_model(q)(x), q(x))


def test_dynamic_batch_and_opset_18(resnet20):
    q, x = resnet20
    model = to_onnx(q, None, x, options=LoweringOptions(opset=18))
    assert next(o.version for o in model.opset_import if o.domain == "") == 18
    for n in (1, 7):
        assert run_ort(model, inputs("resnet20", n)).shape == (n, 10)


def test_float_sides_and_batchnorm_left_in_the_model():
    torch.manual_seed(0)
    model = sdk.models.digits_cnn()
    cfg = sdk.MixedPrecisionConfig.uniform(model, 4, 4)
    first, second, *_ = cfg
    cfg[first], cfg[second] = (32, 4), (4, 32)
    q = sdk.quantize(model, cfg).eval()  # BN still in: to_onnx folds it with calibration.fold_bn
    with torch.no_grad():
        q(torch.randn(32, 1, 8, 8))
    x = inputs("digits_cnn", 100)
    with torch.no_grad():
        ref = calibration.fold_bn(q)(torch.from_numpy(x)).numpy()
    onnx_model = to_onnx(q, None, torch.randn(1, 1, 8, 8))
    assert "BatchNormalization" not in {n.op_type for n in onnx_model.graph.node}
    out = run_ort(onnx_model, x)  # float layers: float rounding may flip a code, one output step at most here
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.99
    np.testing.assert_allclose(out, ref, rtol=0, atol=output_step(q) * 1.001)


def test_refuses_unready_models_with_the_fix():
    model = sdk.models.digits_cnn()
    with pytest.raises(InputError, match="sdk.quantize"):
        to_onnx(model, None, torch.randn(1, 1, 8, 8))
    q = calibration.fold_bn(sdk.quantize(model, sdk.MixedPrecisionConfig.uniform(model, 4, 4)))
    with pytest.raises(InputError, match="Calibrate"):
        to_onnx(q, None, torch.randn(1, 1, 8, 8))
    with pytest.raises(InputError, match="example_input"):
        to_onnx(q, None, np.zeros((1, 1, 8, 8)))  # type: ignore[arg-type]


def test_symmetric_int8_for_tensorrt():
    q, x = quantized("digits_cnn", 0, power_of_two=True)
    for _, m in q.named_modules():
        if isinstance(m, (QuantConv2d, QuantLinear)) and m.act_quant.bits == 8 and not m.act_quant.signed:
            m.set_bits(m.bits[0], 6)  # unsigned 8-bit does not fit symmetric int8
    calibration.round_scales_to_power_of_two_(q)
    model = to_onnx(q, None, x, options=LoweringOptions((*DEFAULT_PASSES, "int8_activations")))
    chains = act_chains(Graph(model))
    assert chains and {(c.params.dtype, int(c.params.zero_point)) for c in chains} == {(TensorProto.INT8, 0)}
    xs = inputs("digits_cnn", 200)
    with torch.no_grad():
        np.testing.assert_array_equal(run_ort(model, xs), q(torch.from_numpy(xs)).numpy())


def test_symmetric_int8_refuses_unsigned_8_bit_activations():
    q, x = quantized("digits_cnn", 0)
    for _, m in quant_layers(q)[1:]:
        m.set_bits(4, 8)
    with pytest.raises(ConfigError, match="target=.tensorrt."):
        to_onnx(q, None, x, options=LoweringOptions((*DEFAULT_PASSES, "int8_activations")))


def test_per_tensor_and_power_of_two_options():
    q, x = quantized("digits_cnn", 2)
    with pytest.raises(ConfigError, match="per_channel=False"):
        to_onnx(q, None, x, options=LoweringOptions((*DEFAULT_PASSES, "per_tensor_weights")))
    with pytest.raises(ConfigError, match="power_of_two=True"):
        to_onnx(q, None, x, options=LoweringOptions((*DEFAULT_PASSES, "power_of_two_check")))
    torch.manual_seed(0)
    model = sdk.models.digits_cnn()
    pt = calibration.fold_bn(
        sdk.quantize(model, sdk.MixedPrecisionConfig.uniform(model, 4, 4), per_channel=False)
    )
    with torch.no_grad():
        pt(torch.randn(32, 1, 8, 8))
    calibration.round_scales_to_power_of_two_(pt)
    lowered = to_onnx(
        pt, None, x, options=LoweringOptions((*DEFAULT_PASSES, "per_tensor_weights", "power_of_two_check"))
    )
    graph = Graph(lowered)
    weight_dqs = [
        n
        for n in lowered.graph.node
        if n.op_type == "DequantizeLinear" and graph.const(n.input[0]) is not None
    ]
    assert weight_dqs and all(quant_params(graph, n).per_tensor for n in weight_dqs)  # type: ignore[union-attr]


def test_each_options_key_names_its_artifact():
    keys = {
        LoweringOptions().key(),
        LoweringOptions((*DEFAULT_PASSES, "uint8_activations", "integer_ops")).key(),
        LoweringOptions((*DEFAULT_PASSES, "uint8_activations", "slice_strided_pointwise")).key(),
        LoweringOptions((*DEFAULT_PASSES, "int8_activations")).key(),
        LoweringOptions((*DEFAULT_PASSES, "signed_float_clip")).key(),
        LoweringOptions((*DEFAULT_PASSES, "quantize_before_maxpool")).key(),
        LoweringOptions((*DEFAULT_PASSES, "split_add")).key(),
        LoweringOptions((*DEFAULT_PASSES, "split_maxpool", "quantize_before_maxpool", "split_conv")).key(),
    }
    assert len(keys) == 8
    with pytest.raises(ValueError):
        LoweringOptions((*DEFAULT_PASSES, "int8_activations", "uint8_activations"))
    with pytest.raises(ValueError):
        LoweringOptions((*DEFAULT_PASSES, "integer_ops"))


@pytest.mark.parametrize("target", ["onnxruntime", "openvino"])
def test_the_x86_targets_lowerings_keep_every_code(target):
    """Split residual adds, float bounds of signed codes, integer Slices (DESIGN §4) are exact: with
    power-of-two scales ORT reproduces the fake-quant model bit for bit from each target's artifact."""
    import targets

    q, x = quantized("resnet18", 0, power_of_two=True)
    model = to_onnx(q, None, x, options=LoweringOptions(targets.get(target).lowering))
    assert [n.op_type for n in model.graph.node].count("Add") > 8  # sums read by two quantizers were split
    xs = inputs("resnet18", 100)
    with torch.no_grad():
        np.testing.assert_array_equal(run_ort(model, xs), q(torch.from_numpy(xs)).numpy())


def test_quantize_before_maxpool_pools_codes_with_the_same_numbers():
    torch.manual_seed(0)
    stem = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, 1), nn.Conv2d(8, 8, 3, padding=1)
    ).eval()
    q = sdk.quantize(stem, {"0": (4, 4), "3": (3, 5)}).eval()
    with torch.no_grad():
        q(torch.randn(32, 3, 8, 8))
    calibration.round_scales_to_power_of_two_(q)
    model = to_onnx(
        q,
        None,
        torch.randn(1, 3, 8, 8),
        options=LoweringOptions((*DEFAULT_PASSES, "quantize_before_maxpool")),
    )
    graph = Graph(model)
    pool = next(n for n in model.graph.node if n.op_type == "MaxPool")
    assert graph.producer[pool.input[0]].op_type == "DequantizeLinear"
    xs = np.random.default_rng(3).standard_normal((50, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_array_equal(run_ort(model, xs), q(torch.from_numpy(xs)).numpy())


class _Cat(nn.Module):
    """Uses torch.cat, which the fx fast path has no handler for."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 4, 3, padding=1)
        self.b = nn.Conv2d(1, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(torch.cat([self.a(x), self.b(x)], 1))
        return self.fc(self.flatten(self.pool(y)))


def test_a_model_with_cat_exports_through_the_one_front_end():
    torch.manual_seed(0)
    q = sdk.quantize(_Cat().eval(), {"a": (4, 4), "b": (3, 5), "fc": (8, 8)}).eval()
    with torch.no_grad():
        q(torch.randn(32, 1, 8, 8))
    calibration.round_scales_to_power_of_two_(q)
    model = Traced(q, torch.randn(1, 1, 8, 8)).lower(
        LoweringOptions((*DEFAULT_PASSES, "uint8_activations", "integer_ops"))
    )
    assert {n.name for n in model.graph.node} >= {"a", "b", "fc"}
    assert [n.op_type for n in model.graph.node].count("Concat") == 1
    xs = inputs("digits_cnn", 200)
    with torch.no_grad():
        np.testing.assert_array_equal(run_ort(model, xs), q(torch.from_numpy(xs)).numpy())


class _Tanh(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x))


def test_a_model_with_an_op_the_front_end_lacks_is_refused_naming_it():
    q = sdk.quantize(_Tanh().eval(), {"conv": (4, 4)}).eval()
    with torch.no_grad():
        q(torch.randn(8, 1, 8, 8))
    with pytest.raises(InputError, match="cannot lower this model: call_function tanh"):
        Traced(q, torch.randn(1, 1, 8, 8))


def test_export_leaves_the_callers_model_as_it_was(resnet20):
    q, x = resnet20
    q.train()
    before = {k: v.clone() for k, v in q.state_dict().items()}
    to_onnx(q, None, x)
    assert q.training
    assert all(torch.equal(v, before[k]) for k, v in q.state_dict().items())
    q.eval()
