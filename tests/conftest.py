"""Suite-wide settings: one intra-op thread per pytest worker (the suite runs with -n 2 on 2 cores, and
oversubscribed torch threads are 20-40x slower on a shared machine)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

try:
    import torch
except ImportError:  # pragma: no cover - torch is a core dependency
    torch = None

if torch is not None:
    torch.set_num_threads(1)
