"""`bpnas demo --quick` end to end, as a user runs it: the CLI in a fresh process, then its bundle."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import targets
from runtimes.bundle import read_manifest

ROOT = Path(__file__).resolve().parents[2]


def _demo(tmp_path: Path, *argv: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """``bpnas demo ARGV --out tmp_path`` in a fresh process from this checkout, one thread."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "sdk.cli", "demo", *argv, "--out", str(tmp_path)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=timeout)


def test_quick_demo_runs_and_every_target_agrees_with_torch(tmp_path: Path) -> None:
    run = _demo(tmp_path, "--quick")
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout

    inside = re.search(r"inside budget: avg bits ([\d.]+) <= ([\d.]+)", out)
    assert inside is not None, out[-3000:]
    assert float(inside.group(1)) <= float(inside.group(2)) == 3.0

    manifest = read_manifest(tmp_path / "digits.bpnas")
    assert manifest.bops.avg_bits <= 3.0 + 1e-9

    served = targets.available(any_scales=True)
    assert served, "no CPU engine installed"
    for name in served:
        row = re.search(rf"^{re.escape(name)}\s+([\d.]+)%\s+([\d.]+)%", out, flags=re.MULTILINE)
        assert row is not None, f"no table row for {name}:\n{out[-2000:]}"
        test_acc, agree = float(row.group(1)), float(row.group(2))
        assert test_acc > 50.0, f"{name}: test accuracy {test_acc}%"
        assert agree >= 99.0, f"{name}: agrees with torch on {agree}% of test images"


def test_quick_detection_demo_serves_boxes_on_every_target(tmp_path: Path) -> None:
    pytest.importorskip("pycocotools")
    run = _demo(tmp_path, "--task", "detect", "--quick")
    assert run.returncode == 0, run.stderr[-3000:]
    manifest = read_manifest(tmp_path / "shapes.bpnas")
    assert manifest.task == "detect" and manifest.bops.avg_bits <= 4.0 + 1e-9
    for name in targets.available(any_scales=True):
        row = re.search(rf"^{re.escape(name)}\s+([\d.]+)\s+([\d.]+)\s+\S+\s+([\d.]+)$", run.stdout, re.M)
        assert row is not None, f"no table row for {name}:\n{run.stdout[-2000:]}"
        assert 0.0 <= float(row.group(1)) <= float(row.group(2)) <= 1.0 and float(row.group(3)) > 0


@pytest.mark.parametrize(
    ("argv", "named"),
    [(["--task", "segment"], "segment"), (["--task", "detect", "--epochs", "2"], "--epochs")],
)
def test_demo_refuses_bad_arguments_by_name(argv: list[str], named: str, tmp_path: Path) -> None:
    run = _demo(tmp_path, *argv, timeout=120)
    assert run.returncode != 0
    assert named in run.stderr, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
