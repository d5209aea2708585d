"""Per-epoch search history: losses, E(SN), sampled bits and every importance factor p_ij."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["EpochRecord", "SearchHistory"]


@dataclass(frozen=True)
class EpochRecord:
    """One epoch's means over its steps. Epoch 0 is the initial supernet (losses are NaN).

    ``expected_bits`` is E(SN) (Eq. 10, in bits) and ``sampled_bits`` the avg bits of the Eq. 8 argmax config,
    both at the end of the epoch; ``backtracks`` counts architecture steps shortened to stay inside b_max.
    """

    epoch: int
    train_ce: float
    val_ce: float
    barrier: float
    prob1: float
    expected_bits: float
    sampled_bits: float
    mu: float
    backtracks: int
    seconds: float
    probs: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["probs"] = {k: list(v) for k, v in self.probs.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EpochRecord:
        kw = dict(d)
        kw["probs"] = {k: tuple(float(x) for x in v) for k, v in d["probs"].items()}
        return cls(**kw)


@dataclass(frozen=True)
class SearchHistory:
    """Records in epoch order plus what the p_ij index: group names and their candidate pairs."""

    records: tuple[EpochRecord, ...]
    candidates: Mapping[str, tuple[tuple[int, int], ...]]

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[EpochRecord]:
        return iter(self.records)

    def __getitem__(self, i: int) -> EpochRecord:
        return self.records[i]

    def column(self, name: str) -> list[float]:
        """One scalar field over epochs, e.g. ``history.column("val_ce")``."""
        return [float(getattr(r, name)) for r in self.records]

    def probs(self, group: str) -> list[tuple[float, ...]]:
        """p_gj per epoch for one group (rows: epochs, columns: candidates)."""
        return [r.probs[group] for r in self.records]

    def final_max_prob(self) -> float:
        """Mean over groups of max_j p_ij at the last epoch: 1.0 means every group is one-hot."""
        last = self.records[-1].probs
        return sum(max(p) for p in last.values()) / len(last) if last else math.nan

    def appended(self, record: EpochRecord) -> SearchHistory:
        return SearchHistory((*self.records, record), self.candidates)

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidates": {k: [list(c) for c in v] for k, v in self.candidates.items()},
            "records": [r.to_dict() for r in self.records],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SearchHistory:
        cands = {k: tuple((int(w), int(a)) for w, a in v) for k, v in d["candidates"].items()}
        return cls(tuple(EpochRecord.from_dict(r) for r in d["records"]), cands)
