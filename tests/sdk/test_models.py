"""The zoo: every registered model builds, runs, traces, has its published size and follows conventions."""

import operator

import pytest
import torch
import torch.fx
from torch import nn

import sdk
from sdk import InputError
from sdk.models import Add, create, default_input_shape, names, task

# torchvision's counts at 1000 classes; resnet20 is He et al.'s ~0.27M (checked within 2%).
PARAMS = {"resnet18": 11_689_512, "resnet50": 25_557_032, "mobilenet_v2": 3_504_872}
EXPECTED = {"resnet20", "resnet18", "resnet50", "mobilenet_v2", "digits_cnn"}
CLASSIFIERS = [n for n in names() if task(n) == "classify"]  # detectors: tests/sdk/test_detector.py


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small inputs run fastest on one thread; OpenMP spin-waits badly when CPUs are shared (pytest -n)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _small_input(name: str, batch: int = 2) -> torch.Tensor:
    _, c, h, w = default_input_shape(name)
    return torch.randn(batch, c, min(h, 32), min(w, 32))


def test_registry_lists_the_zoo():
    assert set(names()) >= EXPECTED
    assert sdk.models.resnet20 is sdk.models.MODELS.get("resnet20")


def test_unknown_name_suggests_close_matches():
    with pytest.raises(InputError, match="resnet20"):
        create("resnet21")


@pytest.mark.parametrize(
    ("name", "shape"),
    [("resnet20", (1, 3, 32, 32)), ("resnet18", (1, 3, 224, 224)), ("digits_cnn", (1, 1, 8, 8))],
)
def test_default_input_shape(name, shape):
    assert default_input_shape(name) == shape


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_forward_shape(name):
    model = create(name, num_classes=7).eval()
    with torch.no_grad():
        assert model(_small_input(name)).shape == (2, 7)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_in_channels(name):
    model = create(name, num_classes=3, in_channels=2).eval()
    _, _, h, w = default_input_shape(name)
    with torch.no_grad():
        assert model(torch.randn(1, 2, min(h, 32), min(w, 32))).shape == (1, 3)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_param_counts_match_torchvision(name):
    assert _params(create(name, num_classes=1000)) == PARAMS[name]


def test_resnet20_param_count():
    assert _params(create("resnet20")) == pytest.approx(270_000, rel=0.02)


@pytest.mark.parametrize("name", names())
def test_fx_traceable(name):
    model = create(name, num_classes=5).eval()
    traced = torch.fx.symbolic_trace(model)
    x = _small_input(name)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x))


class _AddLeafTracer(torch.fx.Tracer):
    """Keeps Add as one call_module node, as the quantizer sees it."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, Add) or super().is_leaf_module(m, qualname)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_conventions(name):
    """ReLUs, adds, pooling and flatten are modules (one per use site); convs before BN have no bias."""
    model = create(name, num_classes=5)
    traced = torch.fx.GraphModule(model, _AddLeafTracer().trace(model))
    modules = dict(traced.named_modules())
    funcs = {torch.relu, torch.nn.functional.relu, torch.nn.functional.relu6, torch.add, torch.flatten}
    bad = [n for n in traced.graph.nodes if n.op == "call_function" and n.target in funcs | {operator.add}]
    assert not bad, f"functional ops the quantizer cannot see: {bad}"
    used = [n.target for n in traced.graph.nodes if n.op == "call_module"]
    acts = [t for t in used if isinstance(modules[t], (nn.ReLU, nn.ReLU6))]
    adds = [t for t in used if isinstance(modules[t], Add)]
    assert acts and len(acts) == len(set(acts)), "every activation use site needs its own module"
    assert len(adds) == len(set(adds)), "every residual addition needs its own Add module"
    if name != "digits_cnn":
        assert adds, "residual models must add through Add modules"
    for a, b in zip(used, used[1:]):
        if isinstance(modules[a], nn.Conv2d) and isinstance(modules[b], nn.BatchNorm2d):
            assert modules[a].bias is None, f"{a} is followed by BN and must not have a bias"
    assert any(isinstance(m, nn.AdaptiveAvgPool2d) for m in model.modules())
    assert any(isinstance(m, nn.Flatten) for m in model.modules())


def test_resnet20_shortcuts_are_modules():
    model = create("resnet20")
    shortcuts = [m.shortcut for m in model.modules() if hasattr(m, "shortcut")]
    assert len(shortcuts) == 9
    convs = [s for s in shortcuts if isinstance(s, nn.Sequential)]
    assert len(convs) == 2 and all(isinstance(s[0], nn.Conv2d) and s[0].kernel_size == (1, 1) for s in convs)


def test_resnet18_state_dict_keys_follow_torchvision():
    keys = set(create("resnet18").state_dict())
    assert {
        "conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.running_mean",
        "fc.bias",
    } <= keys
    assert "layer1.0.downsample.0.weight" not in keys
    mnv2 = set(create("mobilenet_v2").state_dict())
    assert {
        "features.0.0.weight",
        "features.1.conv.0.0.weight",
        "features.18.1.bias",
        "classifier.1.weight",
    } <= mnv2
