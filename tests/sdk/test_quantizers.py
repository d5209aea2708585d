"""Eq. 1 quantizers: level counts, gradients, per-channel vs per-tensor, float pass-through."""

import pytest
import torch

from sdk.quant import ActQuantizer, WeightQuantizer, code_range


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 7, 8])
def test_weight_levels_are_exactly_narrow_symmetric(bits):
    torch.manual_seed(0)
    w = torch.randn(16, 8, 3, 3) * 3
    q = WeightQuantizer(bits, channels=16)
    q.init_from(w)
    codes = q.codes(w)
    n = 2 ** (bits - 1) - 1
    assert codes.min() == -n and codes.max() == n
    assert set(torch.unique(codes).tolist()) <= set(range(-n, n + 1))
    # The dequantized tensor takes exactly codes * scale, at most 2n+1 distinct values per channel.
    out = q(w)
    for c in range(16):
        assert torch.unique(out[c]).numel() <= 2 * n + 1
    torch.testing.assert_close(out, codes.float() * q.scale(4), rtol=0, atol=0)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_unsigned_activation_levels(bits):
    x = torch.linspace(-1, 5, 10_001)
    q = ActQuantizer(bits, signed=False)
    q.init_from(x)
    levels = torch.unique(q(x))
    assert levels.numel() == 2**bits
    assert levels.min() == 0
    assert torch.allclose(levels.max(), q.alpha.detach())


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_signed_activation_levels(bits):
    x = torch.linspace(-5, 5, 10_001)
    q = ActQuantizer(bits)
    q.init_from(x)
    assert q.signed
    n = 2 ** (bits - 1) - 1
    assert torch.unique(q(x)).numel() == 2 * n + 1
    assert q.range == code_range(bits, True) == (-n, n)


def test_signedness_detected_from_first_batch():
    relu_out = torch.rand(4, 8)
    q = ActQuantizer(4)
    q(relu_out)
    assert not q.signed and bool(q.initialized)
    q2 = ActQuantizer(4)
    q2(torch.randn(4, 8))
    assert q2.signed


def test_gradients_reach_weights_and_alpha():
    torch.manual_seed(0)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    q = WeightQuantizer(3, channels=4)
    q.init_from(w)
    with torch.no_grad():
        q.alpha.mul_(0.5)  # some weights now clip
    q(w).pow(2).sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0
    assert q.alpha.grad is not None and q.alpha.grad.abs().sum() > 0
    # Clipped weights get no gradient (straight-through only inside the clip range).
    clipped = w.detach().abs() > q.alpha.detach().reshape(-1, 1, 1, 1)
    assert clipped.any()
    assert torch.all(w.grad[clipped] == 0)

    x = (torch.rand(64) * 4).requires_grad_()
    a = ActQuantizer(4, signed=False)
    a.init_from(x)
    a(x).sum().backward()
    assert x.grad.abs().sum() > 0 and a.alpha.grad is not None and a.alpha.grad != 0


def test_pact_alpha_gradient_is_one_above_clip():
    a = ActQuantizer(4, signed=False)
    a.init_from(torch.tensor([1.0]))
    x = torch.tensor([5.0, 7.0])  # both above alpha=1
    a(x).sum().backward()
    assert torch.allclose(a.alpha.grad, torch.tensor(2.0))


def test_per_channel_equals_per_tensor_when_channels_share_range():
    torch.manual_seed(1)
    base = torch.randn(1, 8, 3, 3)
    w = base.repeat(6, 1, 1, 1) * torch.tensor([1, -1, 1, -1, 1, -1.0]).reshape(-1, 1, 1, 1)
    pc = WeightQuantizer(4, channels=6, per_channel=True)
    pt = WeightQuantizer(4, per_channel=False)
    pc.init_from(w)
    pt.init_from(w)
    torch.testing.assert_close(pc(w), pt(w), rtol=0, atol=0)


def test_32_bits_is_identity():
    w = torch.randn(3, 3, 3, 3, requires_grad=True)
    q = WeightQuantizer(32, channels=3)
    assert q(w) is w
    x = torch.randn(10)
    assert ActQuantizer(32)(x) is x


def test_rounding_is_half_to_even():
    q = ActQuantizer(8, signed=False)
    with torch.no_grad():
        q.alpha.fill_(255.0)  # scale exactly 1
    q.initialized.fill_(True)
    x = torch.tensor([0.5, 1.5, 2.5, 3.5])
    assert q(x).tolist() == [0.0, 2.0, 2.0, 4.0]
