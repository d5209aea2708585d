"""sdk.quantize: a new module, float model untouched, every conv/linear and residual add quantized."""

import pytest
import torch

import sdk
from sdk import InputError, MixedPrecisionConfig
from sdk.models.layers import Add
from sdk.quant import QuantAdd, QuantConv2d, QuantLinear, config_of, quant_layers, set_bits


def test_float_model_untouched_and_layers_replaced():
    model = sdk.models.resnet20(num_classes=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    q = sdk.quantize(model, MixedPrecisionConfig.uniform(model, 4, 4))
    assert not any(isinstance(m, (QuantConv2d, QuantLinear)) for m in model.modules())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    n_layers = len(MixedPrecisionConfig.uniform(model, 4, 4))
    assert len(quant_layers(q)) == n_layers
    adds = [m for m in q.modules() if isinstance(m, Add)]
    assert adds and all(isinstance(m, QuantAdd) for m in adds)
    last = quant_layers(q)[-1][1]
    assert last.out_quant is not None and last.out_quant.bits == 8
    assert all(m.out_quant is None for _, m in quant_layers(q)[:-1])


def test_fake_quant_forward_close_to_float_at_8_bits():
    torch.manual_seed(0)
    model = sdk.models.resnet20(num_classes=10).eval()
    q = sdk.quantize(model, MixedPrecisionConfig.uniform(model, 8, 8)).eval()
    x = torch.randn(8, 3, 32, 32)
    q(x)  # first batch initialises activation ranges
    ref, out = model(x), q(x)
    assert (ref - out).abs().max() < 0.1 * ref.abs().max()


def test_set_bits_and_config_of():
    model = sdk.models.digits_cnn()
    cfg = MixedPrecisionConfig.uniform(model, 4, 4)
    q = sdk.quantize(model, cfg)
    name = next(iter(cfg))
    cfg[name] = (2, 8)
    set_bits(q, cfg)
    assert config_of(q) == cfg


def test_requantizing_and_bad_configs_raise():
    model = sdk.models.digits_cnn()
    q = sdk.quantize(model, MixedPrecisionConfig.uniform(model, 4, 4))
    with pytest.raises(InputError, match="already quantized"):
        sdk.quantize(q, MixedPrecisionConfig.uniform(model, 4, 4))
    with pytest.raises(InputError):
        sdk.quantize(model, {"nope": (4, 4)})
    with pytest.raises(InputError, match="nn.Module, got str"):
        sdk.quantize("digits_cnn", MixedPrecisionConfig.uniform(model, 4, 4))  # type: ignore[arg-type]


def test_residual_and_output_quant_can_be_disabled():
    model = sdk.models.resnet20(num_classes=10)
    q = sdk.quantize(model, MixedPrecisionConfig.uniform(model, 4, 4), residual_bits=32, output_bits=32)
    assert not any(isinstance(m, QuantAdd) for m in q.modules())
    assert quant_layers(q)[-1][1].out_quant is None


def test_bias_lies_on_accumulator_grid():
    torch.manual_seed(0)
    lin = torch.nn.Linear(6, 3)
    q = QuantLinear.from_float(lin, 4, 4)
    q(torch.rand(5, 6))
    s = q.act_quant.scale() * q.weight_quant.scale()
    codes = q.quantized_bias() / s
    torch.testing.assert_close(codes, torch.round(codes), rtol=0, atol=1e-3)
