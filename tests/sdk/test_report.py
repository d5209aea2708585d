"""bpnas report: one self-contained HTML page with its figures, rendered by headless Chromium (skipped when
Chromium is absent) and checked not to be blank."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from sdk.cli import main
from tests.runtimes._bundles import LAYERS, make_bundle

pytest.importorskip("matplotlib")


def _run_dir(root):
    """A search run folder as `bpnas search` leaves it (result.json, metrics.json) plus a bundle."""
    run = root / "run"
    run.mkdir()
    make_bundle(run, targets=("onnxruntime",))
    records = [
        {"epoch": e, "expected_bits": 4 - 0.3 * e, "sampled_bits": 4 - 0.4 * e, "barrier": 0.1 / (e + 1),
         "probs": {"conv1": [0.5 - 0.1 * e, 0.5 + 0.1 * e]}}
        for e in range(4)
    ]  # fmt: skip
    result = {
        "b_max": 3.0,
        "config": {"layers": {n: [4, 4] for n in LAYERS}},
        "history": {"candidates": {"conv1": [[2, 4], [4, 4]]}, "records": records},
        "certificate": {
            "constraints": [
                {
                    "name": "avg_bits",
                    "limit": 3.0,
                    "value": 2.98,
                    "inside": True,
                    "unit": "bits",
                    "basis": "sdk.bops",
                },
                {
                    "name": "weight_kb",
                    "limit": 4.0,
                    "value": 3.5,
                    "inside": True,
                    "unit": "KB",
                    "basis": "integer",
                },
            ]
        },
    }
    (run / "result.json").write_text(json.dumps(result))
    uniform = [{"bits": [b, b], "avg_bits": b, "ptq_acc": 0.5 + 0.05 * b} for b in (3, 4, 8)]
    metrics = {
        "float_acc": 0.95,
        "searched": {"avg_bits": 3.0, "ptq_acc": 0.8, "qat_acc": 0.9},
        "uniform": uniform,
    }
    (run / "metrics.json").write_text(json.dumps(metrics))
    return run


def test_report_of_a_run_has_every_figure_inline(tmp_path):
    run = _run_dir(tmp_path)
    assert main(["report", str(run), "--out", str(tmp_path / "rep"), "-q"]) == 0
    page = (tmp_path / "rep" / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 5 and "not available" not in page
    assert "Effective precision per engine" in page and "<td>onnxruntime</td>" in page
    assert "<h2>Budget certificate</h2>" in page and "<td>weight_kb</td><td>3.500</td><td>4.000</td>" in page
    assert sorted(p.name for p in (tmp_path / "rep").iterdir()) == [
        "accuracy.png", "barrier.png", "bits.png", "importance.png", "index.html", "latency.png"
    ]  # fmt: skip


def test_report_of_a_bundle_says_what_it_lacks(tmp_path):
    bundle = make_bundle(tmp_path, targets=("onnxruntime",))
    assert main(["report", str(bundle), "-q"]) == 0
    page = (tmp_path / "tiny.report" / "index.html").read_text()
    assert page.count("data:image/png") == 2 and page.count("not available") == 4
    assert main(["report", str(tmp_path / "nothing")]) == 2


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)"
)
def test_report_renders_in_headless_chromium(tmp_path):
    import cv2

    run = _run_dir(tmp_path)
    assert main(["report", str(run), "-q"]) == 0
    shot = tmp_path / "shot.png"
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    cmd += [f"--screenshot={shot}", "--window-size=1000,2400", (run / "report" / "index.html").as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (2400, 1000)
    colors = np.unique(img.reshape(-1, 3) // 16, axis=0)
    assert float(img.std()) > 20 and len(colors) > 30  # text, axes and coloured plots, not a blank page
    blue = (img[:, :, 0] > 150) & (img[:, :, 2] < 100)  # matplotlib's default blue bars are drawn
    assert blue.sum() > 1000


def test_report_of_a_bundle_lists_every_artifact_with_its_bytes(tmp_path):
    from runtimes.bundle import read_manifest

    bundle = make_bundle(tmp_path, targets=("onnxruntime", "integer"))
    assert main(["report", str(bundle), "--out", str(tmp_path / "rep"), "-q"]) == 0
    page = (tmp_path / "rep" / "index.html").read_text()
    size = read_manifest(bundle).artifacts["model.onnx"].bytes
    row = f"<td>model.onnx</td><td>onnx-qdq</td><td>{size:,}</td><td>integer, onnxruntime</td>"
    assert "<h2>Artifacts</h2>" in page and row in page
