"""The public surface of API.md: names exist, are the right kind, and `import sdk` stays torch-free."""

import subprocess
import sys

import pytest

import sdk

CALLABLES = ["quantize", "bops", "search", "retrain", "export", "load", "train", "evaluate", "profile"]
CLASSES = ["MixedPrecisionConfig", "BopsReport", "LayerCost", "Preprocess", "Predictor", "LatencyReport"]
ERRORS = ["BpnasError", "InputError", "BundleError", "TargetUnavailable", "BudgetInfeasible", "ConfigError"]


@pytest.mark.parametrize("name", CALLABLES)
def test_entry_points_are_functions_not_shadowing_modules(name):
    obj = getattr(sdk, name)
    assert callable(obj) and not isinstance(obj, type(sys)), f"sdk.{name} is {obj!r}"


@pytest.mark.parametrize("name", CLASSES + ERRORS)
def test_classes_exist(name):
    assert isinstance(getattr(sdk, name), type)


@pytest.mark.parametrize("name", ERRORS[1:])
def test_errors_share_one_base(name):
    assert issubclass(getattr(sdk, name), sdk.BpnasError)


def test_model_zoo_names():
    assert set(sdk.models.names()) >= {"resnet20", "resnet18", "resnet50", "mobilenet_v2", "digits_cnn"}


def test_import_sdk_does_not_import_torch():
    code = "import sys, sdk; sdk.MixedPrecisionConfig; sdk.BopsReport; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_attribute():
    with pytest.raises(AttributeError):
        sdk.does_not_exist  # noqa: B018
