"""What ``Predictor.profile`` reports: :class:`LatencyReport` and the steps that fill it (argument checks,
timed calls, latency percentiles, BOPs searched vs deployed). Deploy side: torch-free.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtimes.base import LayerPrecision, LayerTime
from sdk.config import MixedPrecisionConfig
from sdk.cost import BopsReport
from sdk.errors import InputError
from targets.base import Target

__all__ = ["LatencyReport", "bops_fields", "check_counts", "latency_fields", "time_calls"]


@dataclass(frozen=True)
class LatencyReport:
    """What :meth:`Predictor.profile` measured, and what the bundle and target say it should cost.

    Times are wall-clock per ``predict`` call on a float32 batch of ``batch``. ``bops``/``avg_bits`` are the
    searched configuration's (Eq. 3-4); ``deployed_bops``/``deployed_bits`` the same at the precision the
    target really computes (``Target.deployed_pair`` per layer). ``precision`` is the engine's effective
    precision per layer, ``upcast`` marking layers that run wider than the deployed precision.
    """

    target: str
    batch: int
    runs: int
    threads: int | None
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    fps: float
    bops: int
    avg_bits: float
    deployed_bops: int
    deployed_bits: float
    searched_pairs: Mapping[str, tuple[int, int]]
    deployed_pairs: Mapping[str, tuple[int, int]]
    precision: tuple[LayerPrecision, ...]
    per_layer: tuple[LayerTime, ...] | None = None
    estimated_cycles: int | None = None
    estimated_ms: float | None = None
    notes: tuple[str, ...] = ()  # what the engine warned about its speed (e.g. TVM's untuned kernels)

    @property
    def upcast_layers(self) -> list[str]:
        return [p.layer for p in self.precision if p.upcast]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["searched_pairs"] = {k: list(v) for k, v in self.searched_pairs.items()}
        d["deployed_pairs"] = {k: list(v) for k, v in self.deployed_pairs.items()}
        return d

    def table(self) -> str:
        lines = [
            f"target {self.target}  batch {self.batch}  runs {self.runs}  "
            f"threads {self.threads or 'default'}",
            f"latency ms  p50 {self.p50_ms:.3f}  p90 {self.p90_ms:.3f}  p99 {self.p99_ms:.3f}  "
            f"mean {self.mean_ms:.3f}  fps {self.fps:.1f}",
            f"BOPs searched {self.bops:,} (avg {self.avg_bits:.3f} bits)  deployed {self.deployed_bops:,} "
            f"(avg {self.deployed_bits:.3f} bits)",
        ]
        lines += [f"note: {n}" for n in self.notes]
        if self.estimated_cycles is not None:
            lines.append(
                f"cost model: {self.estimated_cycles:,} cycles = {self.estimated_ms:.3f} ms per sample"
            )
        times: dict[str, float] = {}
        for t in self.per_layer or ():
            times[t.name] = times.get(t.name, 0.0) + t.ms
        head = f"{'layer':<32} {'searched':>8} {'deployed':>8} {'kernel':<24} {'runs as':<8} {'ms':>8}"
        lines += [head, "-" * len(head)]
        prec = {p.layer: p for p in self.precision}
        for name, (w, a) in self.searched_pairs.items():
            p = prec.get(name)
            dw, da = self.deployed_pairs[name]
            ms = f"{times[name]:.4f}" if name in times else "-"
            flag = " UPCAST" if p is not None and p.upcast else ""
            kernel, runs_as = (p.kernel, p.precision) if p else ("-", "-")
            pairs = f"{f'{w}/{a}':>8} {f'{dw}/{da}':>8}"
            lines.append(f"{name[:32]:<32} {pairs} {kernel[:24]:<24} {runs_as:<8} {ms:>8}{flag}")
        return "\n".join(lines)


def check_counts(**counts: tuple[int, int]) -> None:
    """Raise InputError unless each ``name=(value, lowest)`` holds an int value >= lowest."""
    for name, (v, lo) in counts.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise InputError(f"profile: {name} must be an int >= {lo}, got {v!r}.")


def time_calls(call: Callable[[], object], runs: int, warmup: int) -> np.ndarray:
    """Milliseconds per ``call()`` over ``runs`` timed calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        call()
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        call()
        times[i] = time.perf_counter() - t0
    return times * 1e3


def latency_fields(ms: np.ndarray, batch: int) -> dict[str, Any]:
    """The report's latency percentiles, mean and frames per second from per-call milliseconds."""
    mean = float(ms.mean())
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": mean,
        "fps": batch * 1e3 / mean if mean > 0 else math.inf,
    }


def bops_fields(target: Target, bops: BopsReport, config: MixedPrecisionConfig) -> dict[str, Any]:
    """The report's BOPs and pairs, searched and as ``target`` deploys them, and its cost model's estimate."""
    deployed = target.deployed_report(bops)
    return {
        "bops": bops.bops,
        "avg_bits": bops.avg_bits,
        "deployed_bops": deployed.bops,
        "deployed_bits": deployed.avg_bits,
        "searched_pairs": {name: tuple(pair) for name, pair in config.items()},
        "deployed_pairs": {r.name: (r.w_bits, r.a_bits) for r in deployed.layers},
        "estimated_cycles": target.cost.cycles(deployed),
        "estimated_ms": target.cost.latency_ms(deployed),
    }
