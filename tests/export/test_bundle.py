"""sdk.export bundles (DESIGN §5): manifest, checksums, versions, atomic replace. Reading and checking a
bundle is runtimes/bundle.py's, tested in tests/runtimes/test_bundle_format.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import export
import sdk
import targets
from export import bundle as bundle_mod
from runtimes.bundle import MANIFEST_NAME, Manifest, read_manifest, sha256_file
from sdk.errors import BundleError, InputError, TargetUnavailable
from sdk.quant import quant_layers
from tests.export._helpers import inputs, quantized, run_ort
from tests.runtimes._params import target_params


@pytest.fixture(scope="module")
def digits():
    return quantized("digits_cnn", 0, power_of_two=True)


@pytest.fixture(scope="module")
def written(digits, tmp_path_factory):
    q, x = digits
    path = tmp_path_factory.mktemp("b") / "digits.bpnas"
    pre = sdk.Preprocess(size=(8, 8), mean=(0.5,), std=(0.25,), channels=1)
    labels = [str(k) for k in range(10)]
    targets = ["onnxruntime", "openvino", "integer"]
    b = sdk.export(q, path, example_input=x, targets=targets, preprocess=pre, labels=labels)
    return b, q


def test_sdk_export_is_export_export_and_import_export_is_torch_free():
    assert sdk.export is export.export
    code = "import sys, export; export.LoweringOptions; import export.manifest; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_manifest_lists_everything_design_asks_for(written):
    b, q = written
    m = read_manifest(b.path)
    raw = json.loads((b.path / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert raw["format"] == "bpnas-bundle" and raw["format_version"] == 1
    assert raw["name"] == "digits" and raw["created_utc"].endswith("Z")
    for key in ("bpnas", "python", "torch", "onnx", "onnxruntime"):
        assert key in raw["versions"]
    assert raw["versions"]["bpnas"] == sdk.__version__ and raw["versions"]["torch"] == torch.__version__
    assert raw["input"] == {"name": "input", "shape": [None, 1, 8, 8], "dtype": "float32", "layout": "NCHW"}
    assert raw["output"] == {"name": "logits", "shape": [None, 10], "dtype": "float32"}
    assert raw["preprocess"]["size"] == [8, 8] and raw["labels"] == [str(k) for k in range(10)]
    assert raw["task"] == "classify"
    assert raw["config"] == sdk.quant.config_of(q).to_dict()
    assert raw["bops"] == sdk.bops(q, input_shape=(1, 1, 8, 8)).to_dict()
    assert raw["quant"] == {
        "scheme": "bpnas-qdq-v1",
        "per_channel": True,
        "residual_bits": 32,
        "output_bits": 8,
    }
    assert set(raw["targets"]) == {"onnxruntime", "openvino", "integer"}
    keys = {bundle_mod.target_lowering(t)[1].key() for t in raw["targets"]}
    assert len(raw["artifacts"]) == len(keys)  # one file per distinct lowering; targets sharing it share it
    for name, entry in raw["artifacts"].items():
        assert entry["sha256"] == sha256_file(b.path / name)
        assert entry["bytes"] == (b.path / name).stat().st_size and entry["format"] == "onnx-qdq"
    assert m.to_dict() == raw
    assert Manifest.from_dict(m.to_dict(), path=b.path) == m  # round trip
    assert str(b) == os.fspath(b) == str(b.path)


def test_each_target_artifact_runs_the_model(written):
    b, q = written
    x = inputs("digits_cnn", 64)
    with torch.no_grad():
        ref = q(torch.from_numpy(x)).numpy()
    import onnx

    from runtimes.integer.packing import unpack_initializers

    for target in ("onnxruntime", "openvino", "integer"):  # the integer artifact's weights are packed
        np.testing.assert_array_equal(run_ort(unpack_initializers(onnx.load(b.artifact(target))), x), ref)


def test_failed_export_leaves_the_old_bundle_and_no_temp_dirs(digits, tmp_path, monkeypatch):
    q, x = digits
    path = tmp_path / "model.bpnas"
    sdk.export(q, path, example_input=x)
    before = {p.name: sha256_file(p) for p in path.iterdir()}

    def boom(*args, **kwargs):
        raise OSError("disk full")

    for writer in ("write_manifest", "_write_artifact", "_replace"):
        with monkeypatch.context() as mp:
            mp.setattr(bundle_mod, writer, boom)
            with pytest.raises(OSError, match="disk full"):
                sdk.export(q, path, example_input=x, targets=["onnxruntime", "openvino"])
        assert {p.name: sha256_file(p) for p in path.iterdir()} == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bpnas"]
        read_manifest(path)


def test_replace_and_overwrite_rules(digits, tmp_path):
    q, x = digits
    path = tmp_path / "model.bpnas"
    first = sdk.export(q, path, example_input=x)
    second = sdk.export(q, path, example_input=x, targets="openvino", qonnx=True)
    assert set(second.manifest.targets) == {"openvino"} and "model.qonnx.onnx" in second.manifest.artifacts
    assert first.manifest.targets != second.manifest.targets
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bpnas"]
    with pytest.raises(BundleError, match="overwrite=True"):
        sdk.export(q, path, example_input=x, overwrite=False)
    other = tmp_path / "notes"
    other.mkdir()
    with pytest.raises(BundleError, match="not a bpnas bundle"):
        sdk.export(q, other, example_input=x)
    with pytest.raises(InputError, match="labels"):
        sdk.export(q, tmp_path / "l.bpnas", example_input=x, labels=["a", "b"])
    assert not (tmp_path / "l.bpnas").exists()


@pytest.mark.parametrize(
    ("example", "match"),
    [
        (torch.full((1, 1, 8, 8), float("nan")), "NaN or inf"),
        (torch.zeros(1, 1, 8, 8, dtype=torch.long), "float tensor, got dtype"),
        (torch.zeros(1, 3, 8, 8), r"cannot run example_input of shape \(1, 3, 8, 8\)"),
    ],
)
def test_bad_example_inputs_are_refused_and_nothing_is_written(digits, tmp_path, example, match):
    q, _ = digits
    with pytest.raises(InputError, match=match):
        sdk.export(q, tmp_path / "m.bpnas", example_input=example, targets=["onnxruntime"])
    assert list(tmp_path.iterdir()) == []


# -- the engines' effective precision, recorded at export ----------------------------------------------------
def test_manifest_records_what_each_installed_engine_runs(written):
    b, q = written
    m = read_manifest(b.path)
    assert sorted(m.effective_precision) == sorted(set(m.targets) & set(targets.available()))
    layers = {n for n, _ in quant_layers(q)}
    for name, rec in m.effective_precision.items():
        assert layers <= {row.layer for row in rec.layers}, name
        assert rec.host and not rec.engine.endswith("unknown")  # "onnxruntime 1.32.0", "bpnas 0.1.0"...
        with sdk.load(b.path, target=name) as p:  # the manifest says what profile() reports on this host
            assert list(rec.layers) == p.effective_precision()
    assert m.effective_precision["integer"].upcast_layers == []
    if "openvino" in m.effective_precision:  # this bundle has power-of-two scales
        assert any("power of two" in n for n in m.effective_precision["openvino"].notes)
    raw = json.loads((b.path / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert raw["targets"]["integer"]["effective_precision"]["layers"][0]["upcast"] is False


@pytest.mark.parametrize("name", target_params(["tvm"]))
def test_manifest_shows_layers_an_engine_silently_upcasts(digits, tmp_path, name):
    q, x = digits
    m = sdk.export(q, tmp_path / "t.bpnas", example_input=x, targets=[name]).manifest
    rec = m.effective_precision[name]
    assert set(rec.upcast_layers) == {n for n, _ in quant_layers(q)}  # TVM runs the QDQ graph in float
    assert any("untuned" in n for n in rec.notes)


def test_export_without_inspection_records_nothing(digits, tmp_path):
    q, x = digits
    assert (
        sdk.export(q, tmp_path / "n.bpnas", example_input=x, inspect=False).manifest.effective_precision == {}
    )


def test_an_engine_that_cannot_run_the_artifact_fails_the_export(digits, tmp_path, monkeypatch):
    import sdk.predictor

    q, x = digits

    def broken(name):
        def load(*args, **kwargs):
            raise TargetUnavailable("the engine rejected the graph")

        return load

    monkeypatch.setattr(sdk.predictor, "get_runtime", broken)
    with pytest.raises(BundleError, match="target 'onnxruntime' cannot run this bundle.*rejected"):
        sdk.export(q, tmp_path / "f.bpnas", example_input=x)
    assert list(tmp_path.iterdir()) == []  # nothing put in place, no temp dir left


def test_an_integer_bundle_with_float_layers_is_refused_at_export(tmp_path):
    import calibration

    model = sdk.models.digits_cnn().eval()
    cfg = sdk.MixedPrecisionConfig.uniform(model, 4, 4)
    cfg[next(iter(cfg))] = (32, 32)
    q = calibration.ptq(model, cfg, [torch.rand(8, 1, 8, 8)]).eval()
    with pytest.raises(
        BundleError, match=r"'integer' cannot run this bundle.*f\.bpnas keeps.*without 'integer'"
    ):
        sdk.export(q, tmp_path / "f.bpnas", example_input=torch.rand(1, 1, 8, 8), targets=["integer"])
    assert list(tmp_path.iterdir()) == []
