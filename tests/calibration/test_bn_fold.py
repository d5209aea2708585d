"""calibration.fold_bn: folded == unfolded (float exactly, fake-quant closely), fx pair finding, QAT fold."""

import copy

import pytest
import torch
from torch import nn

import sdk
from calibration import FoldedConvBN, find_conv_bn, fold_bn, fold_conv_bn, has_foldable_bn
from sdk import InputError, MixedPrecisionConfig
from sdk.quant import QuantConv2d, config_of, quant_layers


def _input(name: str, n: int = 4, size: int = 32) -> torch.Tensor:
    c = sdk.models.default_input_shape(name)[1]
    return torch.randn(n, c, size, size, generator=torch.Generator().manual_seed(1))


def _with_bn_stats(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Give every BN non-trivial running statistics (one train pass, cumulative) and random affine params."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(x)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.2)
    return model.eval()


@pytest.fixture(scope="module", params=sdk.models.names())
def zoo_model(request):
    """(name, float model with BN statistics, input): built once per module, shared by the zoo tests."""
    name = request.param
    model = _with_bn_stats(sdk.models.create(name, num_classes=10), _input(name, n=8))
    return name, model, _input(name, n=2)


def test_folded_float_model_equals_unfolded(zoo_model):
    name, model, x = zoo_model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert len(find_conv_bn(model)) == n_bn  # every zoo BN directly follows a conv
    folded = fold_bn(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # input untouched
    with torch.no_grad():
        ref, out = model(x), folded(x)
        # float32 differs only by rounding order; float64 checks the algebra at the requested 1e-5
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
        del folded
        model64 = copy.deepcopy(model).double()
        torch.testing.assert_close(fold_bn(model64)(x.double()), model64(x.double()), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("zoo_model", ["digits_cnn", "resnet20", "mobilenet_v2"], indirect=True)
def test_folded_weight_quantized_model_matches(zoo_model):
    """Weights at 4 bits, activations float: folding keeps the codes (but for float32 rounding of alpha)."""
    name, model, x = zoo_model
    q = sdk.quantize(
        model, MixedPrecisionConfig.uniform(model, 4, 32), residual_bits=32, output_bits=32
    ).eval()
    folded = fold_bn(q)
    assert config_of(folded) == config_of(q)  # layer names unchanged
    assert _code_flips(q, folded) <= 1e-5 * sum(m.weight.numel() for _, m in quant_layers(q))
    with torch.no_grad():
        ref, out = q(x), folded(x)
    assert float((out - ref).norm() / ref.norm()) < 1e-2
    assert torch.equal(out.argmax(1), ref.argmax(1))


def _code_flips(q: nn.Module, folded: nn.Module) -> int:
    """Weight codes of ``folded`` that differ from those of ``q`` (signs follow the sign of g/sigma)."""
    layers = dict(quant_layers(folded))
    flips = 0
    for name, layer in quant_layers(q):
        f = layers[name]
        shape = (-1, *[1] * (layer.weight.dim() - 1))
        sign = (torch.sign(f.weight) * torch.sign(layer.weight)).flatten(1).amax(1).reshape(shape)
        expect = layer.weight_quant.codes(layer.weight) * sign.to(torch.int32)
        flips += int((f.weight_quant.codes(f.weight) != expect).sum())
    return flips


def test_folded_codes_and_alpha_follow_bn_scale():
    x = _input("resnet20")
    model = _with_bn_stats(sdk.models.resnet20(), x)
    q = sdk.quantize(model, MixedPrecisionConfig.uniform(model, 4, 4)).eval()
    folded = dict(quant_layers(fold_bn(q)))
    conv, bn = q.conv1, q.bn1
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    torch.testing.assert_close(folded["conv1"].weight_quant.alpha, conv.weight_quant.alpha * scale.abs())
    torch.testing.assert_close(folded["conv1"].weight, conv.weight * scale.reshape(-1, 1, 1, 1))
    torch.testing.assert_close(folded["conv1"].bias, bn.bias - bn.running_mean * scale)  # bias created
    assert _code_flips(q, fold_bn(q)) <= 1e-5 * sum(m.weight.numel() for _, m in quant_layers(q))


def test_quant_conv_bn_pair_folds_exactly():
    """One QuantConv2d + BN on the same quantized input: the only difference is float rounding."""
    torch.manual_seed(0)
    conv = QuantConv2d.from_float(nn.Conv2d(3, 8, 3, padding=1, bias=True), 8, 8)
    bn = nn.BatchNorm2d(8).eval()
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.2, 3.0)
        bn.weight.normal_()  # negative gammas flip weight signs
        bn.bias.normal_()
    x = torch.randn(4, 3, 10, 10)
    conv.eval()(x)  # initialise the input quantizer
    folded = fold_conv_bn(conv, bn)
    assert isinstance(folded, QuantConv2d)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), bn(conv(x)), rtol=1e-4, atol=1e-4)


def test_per_tensor_weight_alpha_reinitialised_from_folded_weights():
    model = _with_bn_stats(sdk.models.digits_cnn(width=8), _input("digits_cnn", size=8))
    q = sdk.quantize(model, MixedPrecisionConfig.uniform(model, 4, 4), per_channel=False)
    for _, layer in quant_layers(fold_bn(q))[:-1]:
        assert layer.weight_quant.alpha.shape == (1,)
        torch.testing.assert_close(layer.weight_quant.alpha, layer.weight.abs().max().reshape(1))


def test_fake_quant_model_close_after_fold():
    x = _input("digits_cnn", n=64, size=8)
    model = _with_bn_stats(sdk.models.digits_cnn(), x)
    q = sdk.quantize(model, MixedPrecisionConfig.uniform(model, 8, 8)).eval()
    with torch.no_grad():
        ref = q(x)  # initialises the activation quantizers, copied by fold_bn
        out = fold_bn(q)(x)
        err_fold = (out - ref).norm() / ref.norm()
        err_quant = (ref - model(x)).norm() / ref.norm()
    assert err_fold < 0.02 and err_fold < err_quant
    assert (out.argmax(1) == ref.argmax(1)).float().mean() >= 0.95


class _Branchy(nn.Module):
    """conv_a feeds its BN and a second consumer; bn_shared is called twice; conv_c -> relu -> bn_c."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_a, self.bn_a = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv_b, self.bn_shared = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)
        self.conv_c, self.relu, self.bn_c = nn.Conv2d(4, 4, 1), nn.ReLU(), nn.BatchNorm2d(4)
        self.conv_d, self.bn_d = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)

    def forward(self, x):
        a = self.conv_a(x)
        y = self.bn_a(a) + a
        y = self.bn_shared(self.conv_b(y))
        y = self.bn_shared(y)
        y = self.bn_c(self.relu(self.conv_c(y)))
        return self.bn_d(self.conv_d(y))


def test_only_direct_single_consumer_pairs_fold():
    model = _Branchy().eval()
    assert find_conv_bn(model) == [type(find_conv_bn(model)[0])("conv_d", "bn_d")]
    folded = fold_bn(model)
    assert isinstance(folded.bn_d, nn.Identity) and isinstance(folded.bn_a, nn.BatchNorm2d)
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(folded(x), model(x), rtol=1e-5, atol=1e-5)


class _Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow
            x = -x
        return self.bn(self.conv(x))


def test_untraceable_model_raises_input_error():
    with pytest.raises(InputError, match="torch.fx"):
        fold_bn(_Untraceable())
    m = _Untraceable().eval()  # the manual escape hatch still works
    x = torch.randn(2, 1, 5, 5)
    torch.testing.assert_close(fold_conv_bn(m.conv, m.bn)(x), m.bn(m.conv(x)), rtol=1e-5, atol=1e-5)


def test_qat_fold_trains_bn_and_freezes_to_plain_fold():
    torch.manual_seed(0)
    x = _input("digits_cnn", n=32, size=8)
    model = _with_bn_stats(sdk.models.digits_cnn(width=8), x)
    q = sdk.quantize(model, MixedPrecisionConfig.uniform(model, 4, 4))
    q.eval()(x)
    qat = fold_bn(q, qat=True)
    folded_layers = [m for m in qat.modules() if isinstance(m, FoldedConvBN)]
    assert len(folded_layers) == 5 and config_of(qat) == config_of(q)
    assert has_foldable_bn(qat) and has_foldable_bn(q) and not has_foldable_bn(fold_bn(q))
    with torch.no_grad():  # eval semantics: the QAT module computes the plain fold
        torch.testing.assert_close(qat.eval()(x), fold_bn(q).eval()(x), rtol=1e-4, atol=1e-4)
    qat.train()
    first = folded_layers[0]
    mean_before = first.bn.running_mean.clone()
    loss = qat(x * 2 + 1).square().mean()
    loss.backward()
    assert not torch.equal(first.bn.running_mean, mean_before)  # BN statistics keep updating
    assert first.weight.grad is not None and first.bn.weight.grad is not None
    assert first.weight_quant.alpha.grad is not None
    frozen = fold_bn(qat).eval()
    assert not any(isinstance(m, (FoldedConvBN, nn.BatchNorm2d)) for m in frozen.modules())
    with torch.no_grad():
        torch.testing.assert_close(frozen(x), qat.eval()(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(first.freeze().eval()(x), first.eval()(x), rtol=0, atol=0)


def _folded_pair(w_bits: int) -> tuple[FoldedConvBN, torch.Tensor]:
    torch.manual_seed(0)
    conv = QuantConv2d.from_float(nn.Conv2d(3, 4, 3, padding=1, bias=False), w_bits, 8)
    x = torch.randn(16, 3, 8, 8)
    conv.eval()(x)  # initialise the input quantizer
    bn = nn.BatchNorm2d(4, momentum=1.0).eval()  # momentum 1: running stats = the last batch's
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.0, -0.7, 1e-9, 1.3]))  # gamma 0, negative, ~0, positive
    return FoldedConvBN.from_pair(conv, bn).train(), x


def test_qat_fold_training_forward_is_conv_then_batch_norm():
    """Float weights: the training forward is conv -> BN in train mode, gammas at 0 or negative included,
    and every gamma (0 too) gets the float BN's gradient: no division by g/sigma kills a channel."""
    folded, x = _folded_pair(32)
    ref_conv, ref_bn = copy.deepcopy(folded), copy.deepcopy(folded.bn)
    out = folded(x)
    ref = ref_bn(nn.Conv2d.forward(ref_conv, ref_conv.act_quant(x)))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(folded.bn.running_var, ref_bn.running_var)
    grad = torch.randn_like(out)
    out.backward(grad)
    ref.backward(grad)
    assert ref_bn.weight.grad is not None and folded.bn.weight.grad is not None
    assert (ref_bn.weight.grad.abs() > 1e-3).all()
    torch.testing.assert_close(folded.bn.weight.grad, ref_bn.weight.grad, rtol=1e-3, atol=1e-3)


def test_qat_fold_statistics_do_not_collapse_when_low_bit_codes_vanish():
    """2-bit weights: a channel whose folded weights all quantize to 0 (here gamma ~ 0) must keep the float
    conv's running_var; taken from the quantized output it went to 0, g/sqrt(eps) blew the fold up and
    retraining digits_cnn at (2,4) diverged to chance."""
    folded, x = _folded_pair(2)
    assert (folded.weight_quant.codes(folded.folded()[0])[2] == 0).all()
    folded(x)
    ref = nn.Conv2d.forward(folded, folded.act_quant(x)).detach().var((0, 2, 3))
    torch.testing.assert_close(folded.bn.running_var, ref, rtol=1e-4, atol=1e-6)
    scale = folded.bn_scale().abs()
    assert torch.isfinite(scale).all() and scale.max() < 10
