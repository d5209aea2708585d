"""Subprocess worker for test_resume: a small deterministic search, optionally checkpointed.

python -m tests.sdk.nas._resume_worker OUT.json EPOCHS [CHECKPOINT_DIR]
"""

import json
import sys

import torch

torch.set_num_threads(1)

import sdk  # noqa: E402
from tests.sdk.nas._tiny import TinyNet, tiny_loaders  # noqa: E402


def main(out: str, epochs: int, checkpoint_dir: str | None) -> None:
    torch.manual_seed(0)
    model = TinyNet()
    train, val = tiny_loaders(n=192, batch=8)
    res = sdk.search(model, train, val, b_max=3.0, epochs=epochs, seed=3, checkpoint_dir=checkpoint_dir,
                     progress=False, mode="sampled", theta_lr=0.05)  # fmt: skip
    blob = {"theta": {k: list(v) for k, v in res.theta.items()}, "config": res.config.to_dict()["layers"],
            "history": res.history.column("val_ce")}  # fmt: skip
    with open(out, "w") as f:
        json.dump(blob, f)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None)
