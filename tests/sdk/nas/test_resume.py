"""A search killed with SIGKILL after its first checkpoint resumes to exactly the uninterrupted result."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
EPOCHS = 6


def _worker(out: Path, ckpt: Path | None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tests.sdk.nas._resume_worker", str(out), str(EPOCHS)]
    return subprocess.Popen([*cmd, *([str(ckpt)] if ckpt else [])], cwd=ROOT, env=env)


def test_resume_after_sigkill_matches_uninterrupted(tmp_path):
    ckpt = tmp_path / "ckpt"
    killed = _worker(tmp_path / "killed.json", ckpt)
    reference = _worker(tmp_path / "reference.json", None)  # runs alongside
    deadline = time.monotonic() + 120
    while not (ckpt / "search.pt").exists():
        assert killed.poll() is None, "worker ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint written within 120 s"
        time.sleep(0.02)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    if (tmp_path / "killed.json").exists():
        pytest.fail("the worker finished before it could be killed; make the search longer")
    resumed = _worker(tmp_path / "resumed.json", ckpt)
    assert resumed.wait(timeout=300) == 0
    assert reference.wait(timeout=300) == 0
    a = json.loads((tmp_path / "resumed.json").read_text())
    b = json.loads((tmp_path / "reference.json").read_text())
    assert a["config"] == b["config"]
    assert a["theta"] == b["theta"]  # bit-identical, not just close
    assert a["history"][1:] == b["history"][1:]


def test_checkpoint_of_another_search_is_refused(tmp_path, tiny, loaders):
    import sdk

    sdk.search(
        tiny, *loaders, b_max=3.0, epochs=1, steps_per_epoch=1, progress=False, checkpoint_dir=tmp_path
    )
    with pytest.raises(sdk.InputError, match="other settings"):
        sdk.search(
            tiny, *loaders, b_max=3.5, epochs=1, steps_per_epoch=1, progress=False, checkpoint_dir=tmp_path
        )
    done = sdk.search(
        tiny, *loaders, b_max=3.0, epochs=1, steps_per_epoch=1, progress=False, checkpoint_dir=tmp_path
    )
    assert len(done.history) == 2  # finished search: nothing left to run, same history back
