"""An engine is two files: a toy one defined under tests/ only round-trips a bundle (export, load, predict).

``_toy_target.py`` (data) and ``tests/runtimes/_toy_runtime.py`` (adapter) are all the toy engine is; no
file of the packages names it. The registries are restored afterwards, so other tests never see "toy".
"""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

import runtimes
import sdk
import targets
from export.options import LoweringOptions
from tests.export._helpers import inputs, quantized


@pytest.fixture
def toy(monkeypatch):
    """Register the toy target and adapter for one test, as importing their files does."""
    monkeypatch.setattr(targets.registry, "_items", dict(targets.registry._items))
    monkeypatch.setattr(runtimes._registry, "_items", dict(runtimes._registry._items))
    for module in ("tests.targets._toy_target", "tests.runtimes._toy_runtime"):
        monkeypatch.delitem(sys.modules, module, raising=False)
        importlib.import_module(module)
    yield targets.get("toy")
    for module in ("tests.targets._toy_target", "tests.runtimes._toy_runtime"):
        sys.modules.pop(module, None)


def test_a_toy_engine_round_trips_a_bundle(toy, tmp_path):
    import onnxruntime as ort

    assert "toy" in targets.names() and "toy" in targets.available() and "toy" in runtimes.runtime_names()
    q, x = quantized("resnet20", 3)
    bundle = sdk.export(q, tmp_path / "m.bpnas", example_input=x, targets=["toy", "onnxruntime"])
    artifact = bundle.artifact("toy")
    assert artifact.name == f"model-{LoweringOptions(toy.lowering).key()}.onnx"  # its own pass list, own file
    assert artifact != bundle.artifact("onnxruntime")

    xs = inputs("resnet20", 4)
    with sdk.load(bundle, target="toy") as p:
        assert p.target.name == "toy"
        got = p.predict(xs)
    reference = ort.InferenceSession(str(artifact), providers=["CPUExecutionProvider"])
    want = reference.run(None, {reference.get_inputs()[0].name: xs})[0]
    np.testing.assert_array_equal(got, want)


def test_the_toy_engine_is_gone_without_its_files():
    assert "toy" not in targets.names() and "toy" not in runtimes.runtime_names()
