"""sdk.retrain: the retrained model is the model export deploys, BN folding costs no accuracy, BN freezing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import calibration
import sdk
from calibration import FoldedConvBN
from sdk.errors import InputError
from sdk.nas.api import peek_batch
from sdk.training import evaluate, train


@pytest.fixture(scope="module")
def digits() -> tuple[nn.Module, sdk.data.DataSplits]:
    """digits_cnn trained float (reshaped) for a few epochs: the starting point of every retrain here."""
    data = sdk.data.digits(seed=0)
    torch.manual_seed(0)
    model = sdk.models.digits_cnn(num_classes=data.num_classes)
    train(model, data.train, data.val, epochs=8, reshape=True, progress=False, seed=0)
    return model, data


def _stack(*loaders: object) -> torch.Tensor:
    return torch.cat([x for loader in loaders for x, _ in loader])  # type: ignore[attr-defined]


def test_retrained_model_is_the_exported_model(digits, tmp_path):
    model, data = digits
    cfg = sdk.MixedPrecisionConfig.uniform(model, 2, 3)
    q = sdk.retrain(model, cfg, data.train, data.val, epochs=1, progress=False)
    assert any(isinstance(m, FoldedConvBN) for m in q.modules())
    x = _stack(data.test, data.val)  # 718 images
    with torch.no_grad():
        trained = q(x)
        torch.testing.assert_close(calibration.fold_bn(q).eval()(x), trained, rtol=0, atol=0)
    sdk.export(q, tmp_path / "d.bpnas", example_input=x[:1], targets=["onnxruntime"])
    deployed = np.asarray(sdk.load(tmp_path / "d.bpnas", target="onnxruntime").predict(x.numpy()))
    np.testing.assert_array_equal(deployed.argmax(1), trained.argmax(1).numpy())


def test_folding_bn_costs_no_accuracy(digits):
    model, data = digits
    cfg = sdk.MixedPrecisionConfig.uniform(model, 4, 4)
    acc = {}
    for fold in (True, False):
        q = sdk.retrain(model, cfg, data.train, None, epochs=2, progress=False, fold_bn=fold)
        acc[fold] = evaluate(q, data.test)
    print(f"(4,4), 2 epochs: test accuracy folded {acc[True]:.4f}, unfolded {acc[False]:.4f}")
    assert acc[True] >= acc[False] - 0.02 and acc[True] > 0.9


def test_unfolded_retrain_keeps_batchnorm_and_the_config(tiny, loaders):
    cfg = sdk.MixedPrecisionConfig({"conv1": (8, 4), "conv2": (2, 3), "fc": (4, 4)})
    q = sdk.retrain(tiny, cfg, *loaders, epochs=1, progress=False, fold_bn=False)
    assert isinstance(q.bn1, nn.BatchNorm2d) and not any(isinstance(m, FoldedConvBN) for m in q.modules())
    folded = sdk.retrain(tiny, cfg, *loaders, epochs=1, progress=False)
    assert isinstance(folded.conv1, FoldedConvBN) and isinstance(folded.bn1, nn.Identity)
    assert sdk.quant.config_of(folded) == cfg and not folded.training


def test_bn_statistics_are_reestimated_on_the_quantized_net_then_frozen(tiny, loaders):
    cfg = sdk.MixedPrecisionConfig.uniform(tiny, 2, 3)
    train_loader, val_loader = loaders
    steps = len(train_loader)  # 4 batches, fewer than BN_REESTIMATE_BATCHES: re-estimation sees them all
    q0 = sdk.quantize(tiny, cfg).eval()
    with torch.no_grad():
        q0(peek_batch(train_loader)[0])  # the batch retrain initialises activation quantizers with
        q0.conv1.weight_quant.bits = 32  # the folded BN tracks the float conv on quantized activations
        conv1_out = q0.conv1(train_loader.dataset.tensors[0])  # one epoch's images (iterating would shuffle)
    frozen = sdk.retrain(tiny, cfg, *loaders, epochs=1, progress=False, freeze_bn_epochs=1)
    assert frozen.conv1.bn.num_batches_tracked == steps  # the re-estimation's batches, nothing after
    torch.testing.assert_close(frozen.conv1.bn.running_mean, conv1_out.mean((0, 2, 3)))

    def tracked(q: Any) -> int:
        return int(q.conv1.bn.num_batches_tracked)

    assert tracked(sdk.retrain(tiny, cfg, *loaders, epochs=1, progress=False)) == 2 * steps  # none frozen
    assert tracked(sdk.retrain(tiny, cfg, *loaders, epochs=2, progress=False)) == 2 * steps  # epoch 2 frozen
    unfolded = sdk.retrain(tiny, cfg, *loaders, epochs=2, progress=False, fold_bn=False, freeze_bn_epochs=0)
    assert unfolded.bn1.num_batches_tracked == 2 * steps  # unfolded: no re-estimation


@pytest.mark.parametrize("bad", [-1, 3, 1.5, True])
def test_freeze_bn_epochs_is_checked(tiny, loaders, bad):
    cfg = sdk.MixedPrecisionConfig.uniform(tiny, 4, 4)
    with pytest.raises(InputError, match="freeze_bn_epochs"):
        sdk.retrain(tiny, cfg, *loaders, epochs=2, freeze_bn_epochs=bad)
