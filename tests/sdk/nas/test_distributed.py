"""`torchrun --nproc_per_node=2 -m sdk.nas ...` on CPU (gloo): both ranks end with one theta and config."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.distributed
def test_two_rank_search_and_retrain_agree(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "sdk.nas", "--model", "digits_cnn", "--float-epochs", "0", "--epochs", "2",
           "--steps-per-epoch", "4", "--retrain-epochs", "1", "--batch-size", "32", "--dump-ranks",
           "--no-progress", "--out", str(tmp_path), "--b-max", "3.0"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["theta"] == r1["theta"]
    assert r0["config"] == r1["config"]
    assert (tmp_path / "config.json").exists() and (tmp_path / "model.pt").exists()
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["within"] and result["certificate"]["avg_bits"] <= 3.0
    assert "retrained test accuracy" in proc.stdout


@pytest.mark.distributed
def test_two_rank_retrain_ends_with_one_model(tmp_path):
    """Parameters agree through DDP; BN statistics (which also fold into the weights) are rank 0's."""
    import torch

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "tests.sdk.nas._retrain_worker", str(tmp_path), "1"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert "conv1.bn.running_var" in r0 and r0.keys() == r1.keys()
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
