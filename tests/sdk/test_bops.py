"""BOPs (Eq. 3-4): MACs match PyTorch's own FLOP counter on every zoo model; Table 1's uniform rows."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import sdk
from sdk import InputError, MixedPrecisionConfig
from sdk.counting import layer_shapes


@pytest.mark.parametrize("name", sdk.models.names())
def test_macs_match_torch_flop_counter(name):
    model = sdk.models.create(name, num_classes=1000 if name != "digits_cnn" else 10).eval()
    shape = sdk.models.default_input_shape(name)
    rep = sdk.bops(model, MixedPrecisionConfig.uniform(model, 8, 8), input_shape=shape)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(shape))
    flops = counter.get_flop_counts()["Global"]
    conv_linear = sum(v for k, v in flops.items() if "conv" in str(k) or "mm" in str(k))
    assert rep.macs == conv_linear // 2
    assert rep.bops == rep.macs * 64


@pytest.mark.parametrize(
    ("bits", "b_comp", "w_comp"),
    [((3, 3), 113.78, 10.67), ((4, 4), 64.0, 8.0), ((32, 32), 1.0, 1.0)],
)
def test_table1_uniform_rows_resnet20(bits, b_comp, w_comp):
    model = sdk.models.resnet20(num_classes=10)
    rep = sdk.bops(model, MixedPrecisionConfig.uniform(model, *bits), input_shape=(1, 3, 32, 32))
    assert round(rep.b_comp, 2) == b_comp
    assert round(rep.w_comp, 2) == w_comp
    assert rep.avg_bits == pytest.approx(bits[0])


@pytest.mark.parametrize(
    ("name", "millions"),
    [("resnet18", 11.69), ("resnet50", 25.56), ("mobilenet_v2", 3.50)],
)
def test_imagenet_parameter_counts(name, millions):
    model = sdk.models.create(name, num_classes=1000)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == millions


def test_resnet20_parameter_count():
    model = sdk.models.resnet20(num_classes=10)
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(0.27, abs=0.01)


def test_mixed_config_avg_bits_is_eq4():
    model = sdk.models.resnet20(num_classes=10)
    rows = layer_shapes(model, (1, 3, 32, 32))
    cfg = MixedPrecisionConfig.uniform(model, 4, 4)
    first = rows[0][0]
    cfg[first] = (8, 8)
    rep = sdk.bops(model, cfg, input_shape=(1, 3, 32, 32))
    total = sum(r[1] for r in rows)
    expect = ((rows[0][1] * 64 + (total - rows[0][1]) * 16) / total) ** 0.5
    assert rep.avg_bits == pytest.approx(expect)
    assert rep.within(expect + 1e-9) and not rep.within(expect - 1e-3)
    assert "B-Comp" in rep.table()


def test_report_round_trips_through_dict():
    model = sdk.models.digits_cnn()
    rep = sdk.bops(model, MixedPrecisionConfig.uniform(model, 3, 5), input_shape=(1, 1, 8, 8))
    again = sdk.BopsReport.from_dict(rep.to_dict())
    assert again == rep and again.avg_bits == rep.avg_bits


def test_quantized_model_reports_its_own_bits():
    model = sdk.models.digits_cnn()
    q = sdk.quantize(model, MixedPrecisionConfig.uniform(model, 2, 4))
    assert sdk.bops(q, input_shape=(1, 1, 8, 8)).avg_bits == pytest.approx(8**0.5)


def test_bad_input_shape():
    model = sdk.models.digits_cnn()
    with pytest.raises(InputError):
        sdk.bops(model, MixedPrecisionConfig.uniform(model, 4, 4), input_shape=(1, 0, 8))
    with pytest.raises(InputError, match="input_shape"):
        sdk.bops(model, MixedPrecisionConfig.uniform(model, 4, 4), input_shape=(1, 3, 8, 8))
    with pytest.raises(InputError, match="input_shape"):  # the model's own ValueError, wrapped
        sdk.bops(model, MixedPrecisionConfig.uniform(model, 4, 4), input_shape=(1, 1, 8))
    with pytest.raises(InputError, match="positive ints"):
        sdk.bops(model, MixedPrecisionConfig.uniform(model, 4, 4), input_shape=5)  # type: ignore[arg-type]
