"""sdk.checkpoint: a retrained model (FoldedConvBN layers) round-trips; v1 checkpoints load; clear errors."""

from __future__ import annotations

import pytest
import torch

import sdk
from calibration import FoldedConvBN
from sdk.checkpoint import load_checkpoint, save_checkpoint
from sdk.errors import InputError


@pytest.fixture(scope="module")
def retrained() -> tuple[torch.nn.Module, torch.nn.Module, torch.Tensor]:
    data = sdk.data.digits(seed=0)
    torch.manual_seed(0)
    model = sdk.models.digits_cnn(num_classes=10)
    cfg = sdk.MixedPrecisionConfig.uniform(model, 3, 3)
    q = sdk.retrain(model, cfg, data.train, None, epochs=1, progress=False)
    x = torch.cat([x for x, _ in data.test])
    return model, q, x


def _save(path, qmodel):
    return save_checkpoint(path, qmodel, model="digits_cnn", num_classes=10, in_channels=1)


def test_retrained_model_round_trips_with_its_folded_layers(retrained, tmp_path):
    model, q, x = retrained
    path = _save(tmp_path / "m.pt", q)
    loaded, meta = load_checkpoint(path)
    assert meta["bn_fold"] == "qat" and meta["format"] == "bpnas-checkpoint-v3"
    assert sum(isinstance(m, FoldedConvBN) for m in loaded.modules()) == 5 and not loaded.training
    assert sdk.quant.config_of(loaded) == sdk.quant.config_of(q)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), q(x), rtol=0, atol=0)


def test_version_1_checkpoints_still_load(retrained, tmp_path):
    model, _, x = retrained
    q = sdk.quantize(model, sdk.MixedPrecisionConfig.uniform(model, 4, 4)).eval()
    with torch.no_grad():
        q(x)
    path = _save(tmp_path / "old.pt", q)
    blob = torch.load(path, weights_only=True)
    assert blob["bn_fold"] == "none"
    blob["format"] = "bpnas-checkpoint-v1"
    del blob["bn_fold"]
    torch.save(blob, path)
    loaded, _ = load_checkpoint(path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), q(x), rtol=0, atol=0)


def test_mismatched_or_unknown_checkpoints_say_so(retrained, tmp_path):
    _, q, _ = retrained
    path = _save(tmp_path / "m.pt", q)
    blob = torch.load(path, weights_only=True)
    blob["bn_fold"] = "none"  # FoldedConvBN state under the plain structure
    torch.save(blob, path)
    with pytest.raises(InputError, match="does not fit digits_cnn"):
        load_checkpoint(path)
    blob["bn_fold"] = "frozen"
    torch.save(blob, path)
    with pytest.raises(InputError, match="BN form 'frozen'"):
        load_checkpoint(path)
