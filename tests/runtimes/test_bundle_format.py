"""The bundle format (runtimes/bundle.py): manifest checks, the task field, checksums, the layer-name
mapping and precision widths. Torch-free: bundles come from tests/runtimes/_bundles.py, not the exporter."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from runtimes.bundle import (
    DEFAULT_TASK,
    MANIFEST_NAME,
    Manifest,
    expected_width,
    map_layer,
    module_path_layer,
    precision_width,
    read_manifest,
    sha256_file,
)
from sdk.errors import BundleError
from tests.runtimes._bundles import LAYERS, make_bundle

RECORD = {
    "host": "x86_64 test",
    "engine": "onnxruntime 1.0",
    "layers": [{"layer": "conv1", "kernel": "QLinearConv", "precision": "u8", "upcast": False}],
    "notes": [],
}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    b = make_bundle(tmp_path_factory.mktemp("format"), targets=("onnxruntime", "integer"))
    data = json.loads((b / MANIFEST_NAME).read_text(encoding="utf-8"))
    data["targets"]["onnxruntime"]["effective_precision"] = RECORD
    (b / MANIFEST_NAME).write_text(json.dumps(data), encoding="utf-8")
    return b


def _edited(bundle: Path, dest: Path, edit) -> Path:
    copy = Path(shutil.copytree(bundle, dest / bundle.name))
    data = json.loads((copy / MANIFEST_NAME).read_text(encoding="utf-8"))
    edit(data)
    (copy / MANIFEST_NAME).write_text(json.dumps(data), encoding="utf-8")
    return copy


def test_a_manifest_reads_back_typed_and_round_trips(bundle):
    m = read_manifest(bundle)
    assert m.path == bundle and m.input.name == "input" and m.output.name == "logits"
    assert m.layer_pairs() == {k: (8, 8) for k in LAYERS}
    assert m.effective_precision["onnxruntime"].layers[0].kernel == "QLinearConv"
    assert m.artifacts["model.onnx"].sha256 == sha256_file(bundle / "model.onnx")
    assert Manifest.from_dict(m.to_dict(), path=bundle) == m


def test_a_manifest_without_a_task_is_a_classifier(bundle, tmp_path):
    assert "task" not in json.loads((bundle / MANIFEST_NAME).read_text(encoding="utf-8"))  # an old bundle
    assert read_manifest(bundle).task == DEFAULT_TASK == "classify"
    detect = _edited(bundle, tmp_path, lambda d: d.update(task="detect"))
    assert read_manifest(detect).task == "detect" and read_manifest(detect).to_dict()["task"] == "detect"
    with pytest.raises(BundleError, match="'task' should be a str"):
        read_manifest(_edited(bundle, tmp_path / "n", lambda d: d.update(task=3)))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format_version=2), "newer than this bpnas"),
        (lambda d: d.update(format="something"), "not a bpnas bundle manifest"),
        (lambda d: d.update(input="input"), "should be a dict"),
        (lambda d: d["targets"].update(x86={"artifact": "nope.onnx"}), "not an artifact"),
        (lambda d: d.update(config={"layers": {"a": [5, 99]}}), "config/bops are invalid"),
        (lambda d: next(iter(d["artifacts"].values())).update(sha256="xyz"), "sha256"),
        (
            lambda d: d["targets"]["onnxruntime"]["effective_precision"]["layers"][0].update(upcast="no"),
            'upcast" should be a bool',
        ),  # fmt: skip
        (lambda d: d["targets"]["onnxruntime"]["effective_precision"].pop("host"), 'host" should be a str'),
        (
            lambda d: d["targets"]["onnxruntime"]["effective_precision"].update(layers={}),
            'layers" should be a list',
        ),  # fmt: skip
    ],
)
def test_schema_and_version_checks(bundle, tmp_path, edit, message):
    with pytest.raises(BundleError, match=message):
        read_manifest(_edited(bundle, tmp_path, edit))


def test_tampered_corrupt_and_unsafe_bundles_are_refused(bundle, tmp_path):
    tampered = Path(shutil.copytree(bundle, tmp_path / "t.bpnas"))
    with open(tampered / "model.onnx", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01")
    with pytest.raises(BundleError, match="checksum"):
        read_manifest(tampered)
    corrupt = Path(shutil.copytree(bundle, tmp_path / "c.bpnas"))
    (corrupt / MANIFEST_NAME).write_text("{not json", encoding="utf-8")
    with pytest.raises(BundleError, match="corrupt"):
        read_manifest(corrupt)
    for bad in ("../evil.onnx", "/etc/passwd", "sub/model.onnx", ".hidden"):

        def rename(d, bad=bad):
            d["artifacts"][bad] = d["artifacts"].pop("model.onnx")
            for t in d["targets"].values():
                t["artifact"] = bad

        with pytest.raises(BundleError, match="unsafe artifact"):
            read_manifest(_edited(bundle, tmp_path / f"u{abs(hash(bad))}", rename))
    linked = Path(shutil.copytree(bundle, tmp_path / "l.bpnas"))
    (linked / "model.onnx").unlink()
    os.symlink(bundle / "model.onnx", linked / "model.onnx")
    with pytest.raises(BundleError, match="symlink"):
        read_manifest(linked)


@pytest.mark.parametrize(
    ("node", "layer"),
    [
        ("conv2", "conv2"),
        ("conv2_token_3", "conv2"),  # ONNX Runtime's fused-node suffix
        ("conv3.relu_nchwc", "conv3"),
        ("conv2.weight_q", "conv2"),  # an initializer
        ("/layer1/layer1.0/conv1/Conv", "layer1.0.conv1"),  # the torch exporter's module path
        ("fc/fq_weights_1", "fc"),  # OpenVINO
        ("conv", None),
        ("pool", None),
    ],
)
def test_engine_node_names_map_to_bpnas_layers(node, layer):
    assert map_layer(node, ["conv2", "conv3", "fc", "layer1.0.conv1", "conv22"]) == layer


def test_module_paths_and_precision_widths():
    assert module_path_layer("/layer1/layer1.0/conv1/Conv") == "layer1.0.conv1"
    assert module_path_layer("/features/features.3/conv/conv.0/Conv") == "features.3.conv.0"
    assert module_path_layer("conv1") == ""
    assert [precision_width(p) for p in ("u8", "I8", "w4a3", "w2a6", "f16", "fp8", "fp4", "who")] == [
        8, 8, 4, 6, 16, 8, 4, 32]  # fmt: skip
    assert expected_width((3, 4)) == 8 and expected_width((4, 32)) == 32 and expected_width((4, 4), 4) == 4
