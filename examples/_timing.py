"""Side-by-side timing for the benchmark scripts: contenders take turns in blocks of calls."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def alternating_blocks(
    fns: dict[str, Callable[[], Any]], runs: int, rounds: int, *, warmup: int = 0, settle: int = 0
) -> dict[str, np.ndarray]:
    """Wall-clock ms per call of each function, as a ``(rounds, ceil(runs / rounds))`` array.

    The contenders take turns in ``rounds`` blocks, so drift in machine load (other processes, thermal
    state) hits every contender alike and per-round ratios compare like with like. Blocks, not single
    calls: engines keep their worker threads spinning for a while after a call (ONNX Runtime's intra-op
    pool, OpenBLAS, TVM), so alternating call by call lets each steal the other's cores (measured on 2
    cores: ORT FP32 ~88 -> ~33 img/s beside the integer runtime; ORT 10.6 -> 30.6 ms and TVM 27 -> 50 ms
    beside each other). ``warmup`` untimed calls of each function come first; ``settle`` untimed calls
    open every block, absorbing the previous contender's spinning threads.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    per_round = max(1, -(-runs // rounds))
    samples = {k: np.empty((rounds, per_round)) for k in fns}
    for r in range(rounds):
        for label, fn in fns.items():
            for _ in range(settle):
                fn()
            for i in range(per_round):
                t0 = time.perf_counter()
                fn()
                samples[label][r, i] = (time.perf_counter() - t0) * 1e3
    return samples
