"""One convolution per activation bit-width equals Eq. 6's per-candidate sum; sampled-path gates."""

import pytest
import torch
from torch import nn

from sdk.nas import PAPER_CANDIDATES
from sdk.nas.mixed import MixedLayer


def _layer_and_input(kind: str) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    if kind == "conv":
        return nn.Conv2d(6, 5, 3, padding=1, bias=True), torch.randn(3, 6, 7, 7).relu()
    if kind == "dwconv":
        return nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False), torch.randn(3, 6, 7, 7)
    return nn.Linear(6, 4), torch.randn(3, 6).relu()


@pytest.mark.parametrize("kind", ["conv", "dwconv", "linear"])
def test_mixing_per_activation_bits_equals_naive_sum(kind):
    layer, x = _layer_and_input(kind)
    mixed = MixedLayer(layer, PAPER_CANDIDATES)
    assert len(mixed.by_a) == 3  # (2,3),(3,3) | (2,4),(3,4),(4,4),(6,4),(8,4) | (4,6)
    theta = torch.randn(len(PAPER_CANDIDATES), requires_grad=True)
    outs, grads = [], []
    for mode in ("full", "naive"):
        mixed.mode = mode
        mixed.probs = torch.softmax(theta, 0)
        y = mixed(x)
        params = [theta, layer.weight, *[q.alpha for q in mixed.w_quant.values()]]
        grads.append(torch.autograd.grad((y * torch.linspace(-1, 1, y.shape[-1])).square().sum(), params))
        outs.append(y.detach())
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
    for g_full, g_naive in zip(*grads):
        torch.testing.assert_close(g_full, g_naive, rtol=1e-3, atol=1e-5)


def test_full_mode_runs_one_conv_per_activation_bitwidth(monkeypatch):
    layer, x = _layer_and_input("conv")
    mixed = MixedLayer(layer, PAPER_CANDIDATES)
    mixed.probs = torch.softmax(torch.randn(8), 0)
    calls = []
    real = layer._conv_forward
    monkeypatch.setattr(layer, "_conv_forward", lambda *a: calls.append(1) or real(*a))
    mixed.mode = "full"
    mixed(x)
    assert len(calls) == 3
    calls.clear()
    mixed.mode = "naive"
    mixed(x)
    assert len(calls) == 8


def test_sampled_paths_value_and_binary_gate_gradient():
    layer, x = _layer_and_input("conv")
    mixed = MixedLayer(layer, PAPER_CANDIDATES)
    mixed.mode = "sampled"
    mixed.choice, mixed.gate = (5,), None
    torch.testing.assert_close(mixed(x), mixed.op(x, 5))
    theta = torch.randn(8, requires_grad=True)
    q = torch.softmax(theta[[5, 1]], 0)
    mixed.choice, mixed.gate = (5, 1), q
    y = mixed(x)
    torch.testing.assert_close(y, mixed.op(x, 5))
    w = torch.randn_like(y)
    (g,) = torch.autograd.grad((w * y).sum(), theta)
    # ProxylessNAS: dL/dtheta_k = sum_l dL/dg_l q_l (delta_kl - q_k), dL/dg_l = <dL/dy, o_l>
    with torch.no_grad():
        dg = torch.stack([(w * mixed.op(x, 5)).sum(), (w * mixed.op(x, 1)).sum()])
        qd = q.detach()
        expect = torch.stack(
            [sum(dg[l] * qd[l] * (float(l == k) - qd[k]) for l in range(2)) for k in range(2)]
        )
    torch.testing.assert_close(g[[5, 1]], expect, rtol=1e-4, atol=1e-5)
    assert torch.count_nonzero(g) == 2
