"""examples/gpu_smoke_tensorrt.py end to end against the CPU stand-in: its plumbing, not TensorRT."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "gpu_smoke_tensorrt.py"
ARGS = ["--stand-in", "--models", "digits_cnn", "--config", "uniform:4,4", "--runs", "2", "--images", "8"]


@pytest.fixture(scope="module")
def smoke():
    spec = importlib.util.spec_from_file_location("gpu_smoke_tensorrt", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


@pytest.mark.parametrize(("version", "typings"), [("10.3.0", ["strong", "weak"]), ("11.4.0", ["strong"])])
def test_smoke_passes_on_the_stand_in(smoke, capsys, version, typings):
    assert smoke.main([*ARGS, "--stand-in-version", version]) == 0
    out = capsys.readouterr().out
    assert f"TensorRT {version}" in out and "CPU STAND-IN" in out and "compute capability 8.6" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("digits_cnn")]
    assert [r[1] for r in rows] == typings  # strong vs weak only where weak typing exists
    for r in rows:
        assert r[3:5] == ["1.000", "0.0000"] and r[6:8] == ["6/6", "reused"] and r[-1] == "PASS"


def test_smoke_fails_when_tensorrt_refuses(smoke, capsys):
    assert smoke.main([*ARGS, "--stand-in-version", "8.6.1"]) == 1
    assert "FAIL TargetUnavailable: TensorRT 8.6.1 is too old" in capsys.readouterr().out


def test_smoke_says_what_is_missing_without_tensorrt(smoke, capsys):
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert smoke.main(["--models", "digits_cnn"]) == 2
        assert "install 'bpnas[tensorrt]'" in capsys.readouterr().out
    else:
        pytest.skip("tensorrt is installed here")
