"""The whole CLI on a user's own project (issue 15 "Done means"): search -> retrain -> export -> predict ->
bench -> report, and quantize -> export -> predict -> bench, with no zoo model and no digits."""

from __future__ import annotations

import json

import pytest

from sdk.cli import main
from tests.sdk._project import make_project

FAST = ["--float-epochs", "1", "--batch-size", "8", "--quiet"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("user"))


def _targets() -> list[str]:
    import targets

    return [t for t in ("onnxruntime", "openvino", "integer") if t in targets.available()] + ["tensorrt"]


def test_search_retrain_export_predict_bench_report(project, tmp_path, capsys):
    run = tmp_path / "run"
    model, data = str(project["spec"]), str(project["data"])
    search = ["search", "--model", model, "--weights", str(project["weights"]), "--data", data, *FAST]
    search += ["--epochs", "1", "--steps-per-epoch", "2", "--out", str(run)]
    assert main(search) == 0
    assert {p.name for p in run.iterdir()} >= {"float.pt", "config.json", "result.json", "metrics.json"}
    retrain = ["retrain", "--from", str(run), "--epochs", "1", "--batch-size", "8", "-q", "--out", str(run)]
    assert main(retrain) == 0
    assert (run / "model.pt").is_file() and not [p for p in run.iterdir() if "tmp" in p.name]
    assert json.loads((run / "metrics.json").read_text())["searched"]["qat_acc"] is not None
    export = ["export", str(run / "model.pt"), "--out", str(run), "--targets", *_targets()[:-1], "-q"]
    assert main(export) == 0
    bundle = run / "model.bpnas"  # --out named an existing folder: the bundle goes inside it
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["preprocess"]["size"] == [16, 16] and manifest["labels"] == ["blue", "green", "red"]
    capsys.readouterr()
    images = project["photos"] / "val" / "red"
    assert main(["predict", str(bundle), str(images / "0.png"), str(images / "1.png"), "--json"]) == 0
    top = json.loads(capsys.readouterr().out)
    assert len(top) == 2 and all(0.0 <= t["top"][0]["prob"] <= 1.0 for t in top)
    bench = ["bench", str(bundle), "--data", data, "--runs", "3", "--warmup", "1", "-o", str(tmp_path / "b")]
    assert main(bench) == 0
    table = capsys.readouterr().out
    print(table)
    assert "| onnxruntime | ok |" in table
    rows = json.loads((tmp_path / "b" / "bench.json").read_text())["rows"]
    assert all(r["accuracy"] is not None for r in rows if r["status"] == "ok")
    assert main(["report", str(run), "-q"]) == 0
    page = (run / "report" / "index.html").read_text()
    for title in (
        "bit allocation",
        "Accuracy vs average bits",
        "E(SN)",
        "Importance",
        "Latency",
        "Effective",
    ):
        assert title in page
    assert "not available" not in page


def test_quantize_export_predict_bench(project, tmp_path, capsys):
    ckpt, bundle = tmp_path / "ptq.pt", tmp_path / "ptq.bpnas"
    data = str(project["data"])
    argv = ["quantize", "--model", str(project["spec"]), "--weights", str(project["weights"]), "--data", data]
    assert main([*argv, "--bits", "8,8", "--out", str(ckpt), "-q"]) == 0
    assert main(["export", str(ckpt), "--out", str(bundle), "-q"]) == 0
    capsys.readouterr()
    assert main(["predict", str(bundle), str(project["photos"] / "val" / "*" / "0.png"), "--top-k", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all(line.count("%") == 2 for line in lines)
    assert main(["bench", str(bundle), "--data", data, "--runs", "3", "--warmup", "1"]) == 0
    print(capsys.readouterr().out)
