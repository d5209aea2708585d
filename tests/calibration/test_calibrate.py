"""calibration.calibrate / ptq: alphas and signedness from data, a folded copy, structural loader checks."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sdk
from calibration import (
    FoldedConvBN,
    PercentileObserver,
    calibrate,
    fold_bn,
    ptq,
    reshape_alpha,
    reshaped,
    weight_alpha,
)
from calibration.reshaping import clipped_fraction
from sdk import InputError, MixedPrecisionConfig
from sdk.quant import ActQuantizer, WeightQuantizer, quant_layers


def _digits(w: int = 4, a: int = 4, **kw) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    model = sdk.models.digits_cnn(width=8).eval()
    return model, sdk.quantize(model, MixedPrecisionConfig.uniform(model, w, a), **kw)


def _batches(n: int = 4, shift: float = 0.0, size: int = 8, channels: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(16, channels, size, size, generator=g) + shift for _ in range(n)]


def _act_quantizers(model: nn.Module) -> dict[str, ActQuantizer]:
    return {n: m for n, m in model.named_modules() if isinstance(m, ActQuantizer)}


def test_returns_folded_calibrated_copy_and_leaves_input_alone():
    _, q = _digits()
    before = {k: v.clone() for k, v in q.state_dict().items()}
    cal = calibrate(q, _batches(), method="minmax")
    assert cal is not q and all(torch.equal(v, q.state_dict()[k]) for k, v in before.items())
    assert any(isinstance(m, nn.BatchNorm2d) for m in q.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in cal.modules())
    assert cal.training == q.training
    assert all(bool(m.initialized) for m in _act_quantizers(cal).values())


def test_minmax_input_alpha_is_the_exact_data_max():
    _, q = _digits()
    data = _batches()
    cal = calibrate(q, data, method="minmax")
    assert cal.features[0][0].act_quant.alpha.item() == pytest.approx(max(float(x.abs().max()) for x in data))
    first = calibrate(q, data, method="minmax", num_batches=1)
    assert first.features[0][0].act_quant.alpha.item() == pytest.approx(float(data[0].abs().max()))


def test_signedness_decided_from_data():
    _, q = _digits()
    q.eval()(_batches(1, shift=10.0)[0])  # a first batch that is all positive: auto-init says unsigned
    assert not q.features[0][0].act_quant.signed
    cal = calibrate(q, _batches())  # calibration data has negatives: signed wins
    acts = _act_quantizers(cal)
    assert acts["features.0.0.act_quant"].signed
    assert not any(
        m.signed for n, m in acts.items() if n.startswith("features.") and n != "features.0.0.act_quant"
    )
    assert not acts["fc.act_quant"].signed  # after ReLU + average pool
    assert acts["fc.out_quant"].signed  # logits stay signed (DESIGN §2)
    pos = calibrate(q, [x.abs() for x in _batches()])
    assert not pos.features[0][0].act_quant.signed


def test_residual_operands_signedness():
    torch.manual_seed(0)
    model = sdk.models.resnet20(num_classes=10).eval()
    q = sdk.quantize(model, MixedPrecisionConfig.uniform(model, 8, 8))
    cal = calibrate(q, _batches(2, size=16, channels=3), method="minmax")
    block = cal.layer1[0]
    assert block.add.quant_a.signed  # BN output feeding the add: negative values
    assert not block.add.quant_b.signed  # identity shortcut carries a ReLU output
    assert not block.conv2.act_quant.signed


@pytest.mark.parametrize("method", ["minmax", "percentile", "mse", "entropy"])
def test_every_method_gives_a_close_8_bit_model(method):
    model, q = _digits(8, 8)
    data = _batches(8)
    cal = calibrate(q, data, method=method).eval()
    x = torch.cat(data)
    with torch.no_grad():
        ref, out = model(x), cal(x)
    assert float((out - ref).norm() / ref.norm()) < 0.1


def test_method_factory_and_unknown_names():
    _, q = _digits()
    tight = calibrate(q, _batches(), method=lambda: PercentileObserver(50.0))
    loose = calibrate(q, _batches(), method="minmax")
    assert tight.features[1][0].act_quant.alpha.item() < loose.features[1][0].act_quant.alpha.item()
    with pytest.raises(InputError, match="mse"):
        calibrate(q, _batches(), method="mse2")
    with pytest.raises(InputError, match="minmax"):
        calibrate(q, _batches(), weight_method="minmax2")


def test_loader_kinds_are_equivalent():
    _, q = _digits()
    data = _batches(3)
    labels = torch.zeros(16, dtype=torch.long)
    ds = TensorDataset(torch.cat(data), torch.zeros(48, dtype=torch.long))
    loaders = {
        "tensors": data,
        "numpy": [x.numpy() for x in data],
        "tuples": [(x, labels) for x in data],
        "lists": [[x, labels] for x in data],
        "generator": (x for x in data),
        "dataloader": DataLoader(ds, batch_size=16),
        "float64": [x.double() for x in data],
    }
    alphas = {
        k: [m.alpha.item() for m in _act_quantizers(calibrate(q, v, method="minmax")).values()]
        for k, v in loaders.items()
    }
    for k, v in alphas.items():
        assert v == pytest.approx(alphas["tensors"]), k


@pytest.mark.parametrize(
    ("loader", "match"),
    [
        ([], "no batches"),
        (torch.randn(4, 1, 8, 8), "single array"),
        (42, "iterable"),
        ("data.npy", "iterable"),
        ([torch.randn(16, 8, 8)], "4-D"),
        ([torch.randn(4, 1, 8, 8), torch.full((4, 1, 8, 8), float("nan"))], "batch 1 contains NaN"),
        ([torch.full((2, 1, 8, 8), float("inf"))], "NaN or inf"),
        ([np.array([["a"]], dtype=object)], "dtype object"),
        ([["not", "numbers"]], "str"),
        ([torch.ones(2, 1, 8, 8, dtype=torch.bool)], "bool"),
        ([torch.randn(4, 1, 8, 8), torch.randn(4, 1, 9, 9)], "per-sample shape"),
        ([torch.randn(0, 1, 8, 8)], "empty"),
        ([torch.randn(4, 3, 8, 8)], "model failed"),
        ([{"x": torch.randn(4, 1, 8, 8)}], "dict"),
    ],
)
def test_bad_loaders_raise_input_error(loader, match):
    _, q = _digits()
    with pytest.raises(InputError, match=match):
        calibrate(q, loader)


def test_bad_arguments_raise_input_error():
    model, q = _digits()
    with pytest.raises(InputError, match="sdk.quantize"):
        calibrate(model, _batches())
    with pytest.raises(InputError, match="num_batches"):
        calibrate(q, _batches(), num_batches=0)
    with pytest.raises(InputError, match="float model"):
        ptq(q, MixedPrecisionConfig.uniform(model, 8, 8), _batches())


def test_power_of_two_scales_round_up():
    _, q = _digits(4, 4)
    plain = calibrate(q, _batches())
    po2 = calibrate(q, _batches(), power_of_two=True)
    plain_q = dict(plain.named_modules())
    for name, m in po2.named_modules():
        if isinstance(m, ActQuantizer):
            s = m.scale().item()
            assert math.frexp(s)[0] == 0.5 and s >= plain_q[name].scale().item()
        elif isinstance(m, WeightQuantizer):
            mant, _ = np.frexp(m.scale().detach().numpy())
            assert np.all(mant == 0.5) and torch.all(m.scale() >= plain_q[name].scale())


def test_weight_methods():
    _, q = _digits(4, 4)
    folded = fold_bn(q)
    for _, layer in quant_layers(folded):
        w = layer.weight
        top = w.abs().flatten(1).amax(1)
        torch.testing.assert_close(weight_alpha(w, 4, True, "minmax"), top)
        mse = weight_alpha(w, 4, True, "mse")
        assert torch.all(mse <= top + 1e-6) and torch.all(mse > 0.2 * top)
        expect = torch.minimum(top, 2 * w.abs().mean())
        torch.testing.assert_close(weight_alpha(w, 4, True, "reshape"), expect)
        torch.testing.assert_close(reshape_alpha(w, per_channel=True), expect)
        assert torch.equal(weight_alpha(w, 32, True, "mse"), top)  # float weights: nothing to clip
    assert any(
        torch.any(weight_alpha(m.weight, 2, True, "mse") < 0.9 * m.weight_quant.alpha)
        for _, m in quant_layers(folded)
    )
    cal = dict(quant_layers(calibrate(q, _batches(), weight_method="reshape")))
    for name, layer in quant_layers(folded):
        torch.testing.assert_close(
            cal[name].weight_quant.alpha, reshape_alpha(layer.weight, per_channel=True)
        )


def test_reshaped_copy_clips_weights():
    model, _ = _digits()
    before = clipped_fraction(model)
    assert max(before.values()) > 0  # a fresh model has weights past 2 * mean|W|
    clipped = dict(reshaped(model).named_modules())
    for name, m in model.named_modules():
        if name in before:
            t = 2 * m.weight.abs().mean()
            torch.testing.assert_close(clipped[name].weight, m.weight.clamp(-t, t))
    assert clipped_fraction(model) == before  # the original is untouched


def test_float_layers_are_left_alone_and_qat_models_freeze():
    model, _ = _digits()
    cfg = MixedPrecisionConfig.uniform(model, 4, 4)
    cfg["features.0.0"] = (32, 32)
    q = sdk.quantize(model, cfg)
    cal = calibrate(fold_bn(q, qat=True), _batches())
    assert not any(isinstance(m, FoldedConvBN) for m in cal.modules())
    assert not bool(cal.features[0][0].act_quant.initialized)  # 32 bits: nothing to calibrate
    assert bool(cal.features[1][0].act_quant.initialized)


def test_ptq_matches_quantize_then_calibrate():
    model, q = _digits(8, 8)
    data = _batches()
    a = ptq(model, MixedPrecisionConfig.uniform(model, 8, 8), data, method="percentile").eval()
    b = calibrate(q, data, method="percentile").eval()
    x = torch.cat(data)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x))
