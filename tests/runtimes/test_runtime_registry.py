"""The runtime registry: built-in adapters found by module name, lazily; out-of-tree ones registered."""

from __future__ import annotations

import subprocess
import sys

import pytest

import runtimes
import targets
from runtimes import get_runtime, register_runtime, runtime_names
from sdk.errors import TargetUnavailable


def test_every_target_names_a_known_runtime():
    for name in targets.names():
        assert targets.get(name).runtime in runtime_names()


def test_registering_and_listing_imports_no_engine():
    code = (
        "import sys, runtimes; runtimes.runtime_names(); "
        "bad = [m for m in ('onnxruntime', 'openvino', 'tvm', 'tensorrt', 'torch') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_get_runtime_imports_the_adapter_lazily():
    load = get_runtime("onnxruntime")
    assert callable(load) and load.__module__ == "runtimes.onnxruntime"
    assert get_runtime("onnxruntime") is load


def test_unknown_runtime_suggests_close_matches():
    with pytest.raises(TargetUnavailable, match="Did you mean 'openvino'"):
        get_runtime("openvin")


def test_builtin_adapters_are_the_modules_of_the_package():
    assert {"onnxruntime", "openvino", "tvm", "tensorrt", "integer"} <= set(runtime_names())
    assert not {"base", "_layers"} & set(runtime_names())
    with pytest.raises(TargetUnavailable, match="unknown runtime 'ghost'"):
        get_runtime("ghost")


def test_private_modules_are_not_runtimes():
    with pytest.raises(TargetUnavailable, match="unknown runtime '_layers'"):
        get_runtime("_layers")


def test_decorator_registration_and_duplicates(monkeypatch):
    monkeypatch.setattr(runtimes, "_registry", type(runtimes._registry)("runtime", TargetUnavailable))

    @register_runtime("custom")
    def load(artifact, manifest, options):  # pragma: no cover - never called
        raise AssertionError

    assert get_runtime("custom") is load
    assert "custom" in runtime_names()
    with pytest.raises(ValueError, match="already registered"):
        register_runtime("custom")(load)
