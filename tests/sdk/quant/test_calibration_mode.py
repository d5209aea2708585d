import torch
from torch import nn

from sdk.nas.api import prepare_space
from sdk.nas.space import PAPER_CANDIDATES
from sdk.nas.supernet import build_supernet
from sdk.quant.calibration_mode import calibration_mode
from sdk.quant.quantizers import ActQuantizer


def _deep_untrained(depth: int = 6) -> nn.Sequential:
    """conv-BN-ReLU blocks whose weights shrink the signal 100x per block: in eval mode with untrained BN
    (running stats 0 and 1) the last blocks see ~1e-12, with batch statistics ~1."""
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(depth):
        conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        conv.weight.data.mul_(0.01)
        layers += [conv, nn.BatchNorm2d(4), nn.ReLU()]
    return nn.Sequential(*layers)


def test_untrained_batchnorm_calibrates_on_batch_statistics_and_keeps_its_running_ones():
    model = _deep_untrained()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(8, 4, 8, 8)
    with calibration_mode(model):
        assert not model[0].training and not torch.is_grad_enabled()
        assert all(m.training for m in model if isinstance(m, nn.BatchNorm2d))
        out = model(x)
    assert float(out.std()) > 0.1  # normalised per batch, not shrunk 1e-12 by six untrained blocks
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert model.training and all(m.training for m in model)


def test_trained_batchnorm_calibrates_on_its_running_statistics():
    model = _deep_untrained().eval()
    for m in model:
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.fill_(0.5)  # trained statistics (imported ones may keep a count of 0)
    with calibration_mode(model):
        assert not any(m.training for m in model)
    assert not model.training


def test_a_supernet_of_an_untrained_net_calibrates_clip_ranges_off_their_floor():
    model = _deep_untrained()
    space = prepare_space(model, (1, 4, 8, 8), PAPER_CANDIDATES, "layer", None)
    sn = build_supernet(model, space)
    sn.calibrate(torch.randn(8, 4, 8, 8))
    alphas = [float(m.alpha.abs().max()) for m in sn.modules() if isinstance(m, ActQuantizer)]
    assert alphas and min(alphas) > 0.1  # eval mode on untrained BN put the deep ones at the 1e-3 floor
