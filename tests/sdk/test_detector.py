"""The zoo's detectors: registered as "detect", output the K + 5 channel head, quantize, count and train."""

import pytest
import torch
import torch.fx
from torch import nn

import sdk
from sdk.detection.boxes import HEAD_EXTRA
from sdk.detection.data import shapes
from sdk.detection.loss import DetectionLoss
from sdk.models import create, default_input_shape, names, task

DETECTORS = [n for n in names() if task(n) == "detect"]


def test_detectors_are_registered_with_their_task():
    assert {"fcos_mobilenet_v2", "fcos_resnet8"} <= set(DETECTORS)
    assert task("resnet20") == "classify"
    assert default_input_shape("fcos_resnet8") == (1, 3, 64, 64)
    with pytest.raises(sdk.InputError, match="fcos_resnet8"):
        task("fcos_resnet9")


@pytest.mark.parametrize("name", DETECTORS)
def test_head_shape_and_prior(name):
    model = create(name, num_classes=3).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 48))
    assert out.shape == (2, 3 + HEAD_EXTRA, 4, 6) and model.stride == 8
    assert torch.sigmoid(out[:, :3]).mean() < 0.05  # focal-loss prior: few false positives at start
    assert model.params(score_thr=0.3).score_thr == 0.3


@pytest.mark.parametrize("name", DETECTORS)
def test_every_layer_quantizes_and_counts(name):
    model = create(name, num_classes=3)
    cfg = sdk.MixedPrecisionConfig.uniform(model, w_bits=4, a_bits=4)
    rep = sdk.bops(model, cfg, input_shape=(1, 3, 64, 64))
    assert rep.avg_bits == pytest.approx(4.0) and rep.b_comp == pytest.approx(64.0)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert [layer.name for layer in rep.layers] == convs and convs[-1] == "head"
    q = sdk.quantize(model, cfg)
    head = q.get_submodule("head")
    assert head.out_quant is not None and head.out_quant.bits == 8  # the 8-bit head output
    assert q(torch.randn(2, 3, 32, 32)).shape == (2, 3 + HEAD_EXTRA, 4, 4)


@pytest.mark.parametrize("name", DETECTORS)
def test_fx_traceable(name):
    model = create(name, num_classes=2).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.fx.symbolic_trace(model)(x), model(x))


def test_a_few_steps_lower_the_loss():
    torch.manual_seed(0)
    train, _ = shapes(n_train=8, n_val=1, size=32, seed=0)
    model = create("fcos_resnet8", num_classes=5)
    loss_fn = DetectionLoss(5, model.stride)
    x, y = next(iter(train.loader(8)))
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    losses = []
    for _ in range(8):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
