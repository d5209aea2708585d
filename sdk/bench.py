"""``bpnas bench``: one row per target of a bundle, with what a deployment engineer compares.

Per target: status (ok / skipped: reason / failed: reason), artifact size, searched and deployed average bits,
layers the engine runs wider than deployed, accuracy on labelled data (or, without data, top-1 agreement with
the first target that ran), p50/p99 latency and FPS. A failing target does not stop the others. Deploy-side:
no torch unless a data spec has to be read.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BenchRow", "BenchTable", "bench", "eval_arrays"]

_AGREEMENT_SAMPLES = 64


@dataclass(frozen=True)
class BenchRow:
    target: str
    status: str
    size_kb: float | None = None
    searched_bits: float | None = None
    deployed_bits: float | None = None
    upcast_layers: int | None = None
    accuracy: float | None = None
    agreement: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    fps: float | None = None


@dataclass(frozen=True)
class BenchTable:
    bundle: str
    rows: tuple[BenchRow, ...]
    data: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "data": self.data, "rows": [asdict(r) for r in self.rows]}

    def markdown(self) -> str:
        head = ["target", "status", "size KB", "searched bits", "deployed bits", "upcast", "accuracy %"]
        head[-1] = "accuracy %" if self.data else "top-1 agreement %"
        head += ["p50 ms", "p99 ms", "FPS"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in self.rows:
            score = r.accuracy if self.data else r.agreement
            cells = [
                r.target, r.status, _f(r.size_kb, 1), _f(r.searched_bits, 2), _f(r.deployed_bits, 2),
                "" if r.upcast_layers is None else str(r.upcast_layers),
                _f(None if score is None else 100 * score, 1),
                _f(r.p50_ms, 3), _f(r.p99_ms, 3), _f(r.fps, 1),
            ]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow([f.name for f in fields(BenchRow)])
        for r in self.rows:
            w.writerow(["" if v is None else v for v in asdict(r).values()])
        return buf.getvalue()

    def write(self, folder: str | os.PathLike[str]) -> list[Path]:
        """bench.csv, bench.json and bench.md in ``folder``, each written atomically."""
        from sdk.outputs import write_text_atomic

        out = Path(folder)
        return [
            write_text_atomic(out / "bench.csv", self.csv()),
            write_text_atomic(out / "bench.json", json.dumps(self.to_dict(), indent=1)),
            write_text_atomic(out / "bench.md", self.markdown() + "\n"),
        ]


def _f(v: float | None, digits: int) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def eval_arrays(spec: str, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
    """The test split of a data spec as (float32 NCHW, int64 labels) arrays, as the model was trained."""
    from sdk.dataspec import load_data

    data = load_data(spec, **kwargs)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in data.test])
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)


def bench(
    bundle: str | os.PathLike[str],
    *,
    targets: Sequence[str] | None = None,
    data: tuple[np.ndarray, np.ndarray] | None = None,
    data_name: str | None = None,
    runs: int = 50,
    warmup: int = 5,
    threads: int | None = None,
) -> BenchTable:
    """Bench ``bundle`` on ``targets`` (default: every target it carries); ``data`` = (x, y) for accuracy."""
    import targets as registry
    from runtimes.bundle import read_manifest

    manifest = read_manifest(bundle)  # raises BundleError before any row
    names = list(targets) if targets else list(manifest.targets)
    x = data[0] if data is not None else _random_inputs(manifest)
    reference: np.ndarray | None = None
    rows = []
    for name in names:
        try:
            target = registry.get(name)
        except Exception as e:
            rows.append(BenchRow(name, f"failed: {e}"))
            continue
        if target.name not in manifest.targets:
            rows.append(BenchRow(target.name, "skipped: not in the bundle (re-export with it)"))
            continue
        size = manifest.artifacts[manifest.targets[target.name]].bytes / 1024  # as the manifest records it
        if target.name not in registry.available():
            reason = registry.unavailable().get(target.name, "engine not installed")
            rows.append(BenchRow(target.name, f"skipped: {reason}", size_kb=size))
            continue
        try:
            row, top1 = _bench_one(bundle, target.name, x, data, runs, warmup, threads, size)
        except Exception as e:  # one engine failing must not stop the others
            rows.append(
                BenchRow(target.name, f"failed: {type(e).__name__}: {' '.join(str(e).split())[:200]}")
            )
            continue
        if data is None:
            reference = top1 if reference is None else reference
            row = BenchRow(**{**asdict(row), "agreement": float(np.mean(top1 == reference))})
        rows.append(row)
    return BenchTable(os.fspath(bundle), tuple(rows), data_name)


def _bench_one(
    bundle: Any, name: str, x: np.ndarray, data: Any, runs: int, warmup: int, threads: int | None, size: Any
) -> tuple[BenchRow, np.ndarray]:
    import sdk

    with sdk.load(bundle, target=name, threads=threads) as p:
        batch = p.input_spec.shape[0] or 32
        top1 = np.concatenate([p.predict(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])
        rep = p.profile(runs=runs, warmup=warmup)
    acc = float(np.mean(top1 == data[1])) if data is not None else None
    row = BenchRow(
        name, "ok", size_kb=size, searched_bits=rep.avg_bits, deployed_bits=rep.deployed_bits,
        upcast_layers=len(rep.upcast_layers), accuracy=acc, p50_ms=rep.p50_ms, p99_ms=rep.p99_ms, fps=rep.fps,
    )  # fmt: skip
    return row, top1


def _random_inputs(manifest: Any) -> np.ndarray:
    shape = [_AGREEMENT_SAMPLES, *(d or 1 for d in manifest.input.shape[1:])]
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)
