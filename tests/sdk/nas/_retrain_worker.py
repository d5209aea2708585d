"""Subprocess worker for test_distributed: retrain TinyNet (BN folded) under DDP, dump this rank's model.

python -m torch.distributed.run --nproc_per_node=2 -m tests.sdk.nas._retrain_worker OUT_DIR EPOCHS
"""

import sys
from pathlib import Path

import torch

torch.set_num_threads(1)

import sdk  # noqa: E402
from sdk.nas import distributed as ddp  # noqa: E402
from tests.sdk.nas._tiny import TinyNet, tiny_loaders  # noqa: E402


def main(out: str, epochs: int) -> None:
    ddp.init_from_env()
    torch.manual_seed(0)
    model = TinyNet()
    train, val = tiny_loaders(n=192, batch=8)
    q = sdk.retrain(model, sdk.MixedPrecisionConfig.uniform(model, 2, 3), train, val, epochs, progress=False)
    torch.save(q.state_dict(), Path(out) / f"rank{ddp.rank()}.pt")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
