"""Baselines the paper compares against: uniform (b, b) QAT and DNAS-style search with a lambda * E(SN)
cost term instead of the barrier (Eq. 9), plus the lambda sweep a DNAS user needs to meet a budget."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from torch import nn
from torch.utils.data import DataLoader

from sdk.config import MixedPrecisionConfig
from sdk.nas.algorithm import SearchSettings
from sdk.nas.result import SearchResult
from sdk.nas.space import PAPER_CANDIDATES

__all__ = ["uniform_qat", "dnas_search", "LambdaSweep", "lambda_sweep"]


def uniform_qat(
    model: nn.Module,
    bits: int | tuple[int, int],
    train_loader: DataLoader,
    val_loader: DataLoader | None = None,
    epochs: int = 30,
    **retrain_kwargs: Any,
) -> nn.Module:
    """Retrain every layer at (b, b) (or the given (w, a)) with the same QAT recipe as ``sdk.retrain``."""
    from sdk.nas.qat import retrain

    w, a = (bits, bits) if isinstance(bits, int) else bits
    cfg = MixedPrecisionConfig.uniform(model, w, a)
    return retrain(model, cfg, train_loader, val_loader, epochs, **retrain_kwargs)


def dnas_search(
    model: nn.Module,
    train_loader: DataLoader,
    val_loader: DataLoader,
    lam: float,
    *,
    b_max: float = 3.0,
    candidates: Iterable[Any] = PAPER_CANDIDATES,
    epochs: int = 20,
    groups: Any = "layer",
    seed: int = 0,
    progress: bool = False,
    prob1_weight: float = 0.0,
    **settings: Any,
) -> SearchResult:
    """DNAS [22]-style search: theta minimises CE + ``lam`` * E(SN) (bits); no barrier, repair, or
    budget-aware start (theta starts uniform).

    ``b_max`` is only used to report ``result.within``; nothing steers the result inside it.
    """
    from sdk.nas.api import run_search

    s = SearchSettings(
        b_max=float(b_max),
        epochs=epochs,
        seed=seed,
        objective="dnas",
        lam=float(lam),
        prob1_weight=prob1_weight,
        **settings,
    )
    return run_search(
        model,
        train_loader,
        val_loader,
        s,
        candidates=candidates,
        groups=groups,
        progress=progress,
        method="dnas",
    )


@dataclass(frozen=True)
class LambdaSweep:
    """The runs of a lambda sweep in order: (lambda, avg bits, within b_max)."""

    b_max: float
    runs: tuple[tuple[float, float, bool], ...]
    results: tuple[SearchResult, ...]

    @property
    def needed(self) -> int | None:
        """Searches run until the first one inside b_max (None: none was)."""
        return next((i + 1 for i, (_, _, ok) in enumerate(self.runs) if ok), None)

    @property
    def needed_close(self) -> int | None:
        """Searches run until one landed in [0.9 b_max, b_max] (None: none did)."""
        return next((i + 1 for i, (_, b, ok) in enumerate(self.runs) if ok and b >= 0.9 * self.b_max), None)


def lambda_sweep(
    run: Callable[[float], SearchResult],
    b_max: float,
    *,
    start: float = 0.01,
    factor: float = 3.0,
    max_runs: int = 10,
    refine: bool = True,
) -> LambdaSweep:
    """How a DNAS user tunes lambda: grow it geometrically from ``start`` until a result is inside ``b_max``,
    then (``refine``) bisect log-lambda between the last outside and first inside value until a result lands
    in [0.9 b_max, b_max] or ``max_runs`` searches were spent. ``run(lam)`` performs one search."""
    runs: list[tuple[float, float, bool]] = []
    results: list[SearchResult] = []

    def attempt(lam: float) -> tuple[float, bool]:
        r = run(lam)
        results.append(r)
        runs.append((lam, r.avg_bits, r.within))
        return r.avg_bits, r.within

    lo: float | None = None
    lam = start
    hi: float | None = None
    while len(runs) < max_runs:
        bits, ok = attempt(lam)
        if ok:
            hi = lam
            break
        lo, lam = lam, lam * factor
    if refine and hi is not None and runs[-1][1] < 0.9 * b_max:
        low = lo if lo is not None else hi / factor**2
        high = hi
        while len(runs) < max_runs:
            mid = math.sqrt(low * high)
            bits, ok = attempt(mid)
            if ok and bits >= 0.9 * b_max:
                break
            if ok:
                high = mid
            else:
                low = mid
    return LambdaSweep(float(b_max), tuple(runs), tuple(results))
