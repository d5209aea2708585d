"""The search study on tasks harder than digits (``search_study.py --hard``): for each architecture, b_max and
seed, BP-NAS (the 4-epoch search from the float model with the hinge start, the paper's longer 16-epoch
one, the previous theta_lr 5e-3, and the measured-sensitivity start, the default since session 6, at 4 and 16
epochs) vs every uniform config inside the budget vs the greedy and the
measured-sensitivity knapsack baselines, every config retrained with the same recipe and seed.
Every search and retrain is cached as JSON under OUT/<arch>/, so the study resumes and can be split over
processes (``--arch``); the tables go to OUT/HARD.md (means, stds, paired differences, search cost).
"""

from __future__ import annotations

import inspect
import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

import sdk
from examples._study_tasks import ARCHS, noisy_digits
from sdk.data import split_loader
from sdk.nas import greedy_config, sensitivity_config
from sdk.training import evaluate, train

# BP-NAS variants: label -> (cache prefix, long search?, extra sdk.search keywords). "bp-nas" is the search
# with the hinge start (theta_lr 0.05 since issue 12; the default until "bp-nas sens-start", the measured-
# sensitivity start, became it in session 6); the 5e-3 rows are the previous theta_lr, kept for comparison.
BPNAS: dict[str, tuple[str, bool, dict[str, Any]]] = {
    "bp-nas": ("mp", False, {"start": "hinge"}),
    "bp-nas 16 epochs": ("mp", True, {"start": "hinge"}),
    "bp-nas theta_lr 5e-3": ("mp", False, {"theta_lr": 5e-3, "start": "hinge"}),
    "bp-nas+knapsack theta_lr 5e-3": (
        "mpk",
        False,
        {"theta_lr": 5e-3, "finish": "knapsack", "start": "hinge"},
    ),
    "bp-nas sens-start": ("mps", False, {"start": "sensitivity"}),
    "bp-nas sens-start 16 epochs": ("mps", True, {"start": "sensitivity"}),
}
CEILING = "ceiling: (2,3), layers < 5% of MACs at (8,8)"  # outside b_max 2.5: what cheap layers can buy
METHODS = (*BPNAS, "greedy", "sensitivity", "uniform", CEILING)
THETA_LR = float(inspect.signature(sdk.search).parameters["theta_lr"].default)


@dataclass(frozen=True)
class Hard:
    archs: tuple[str, ...] = ("mobilenet", "resnet")
    b_maxes: tuple[float, ...] = (2.5, 3.0, 3.5, 4.0)
    seeds: int = 10
    size: int = 16
    copies: int = 1
    noise: float = 0.2
    width: int = 8
    float_epochs: int = 25
    search_epochs: int = 4
    long_epochs: int = 16  # the paper's longer search ("bp-nas 16 epochs")
    retrain_epochs: int = 3
    batch_size: int = 64
    sens_batches: int = 4
    methods: tuple[str, ...] = METHODS


def uniform_inside(b_max: float) -> list[tuple[int, int]]:
    return [p for p in sdk.nas.PAPER_CANDIDATES if p[0] * p[1] <= b_max**2]


class HardRunner:
    def __init__(self, h: Hard, arch: str, out: Path) -> None:
        self.h, self.arch, self.out = h, arch, out / arch
        self.out.mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(1)
        self.task = self.task_for(0)
        torch.manual_seed(0)
        self.model = ARCHS[arch](width=h.width)
        path = self.out / f"float_e{h.float_epochs}.pt"
        if path.exists():
            self.model.load_state_dict(torch.load(path, weights_only=True))
        else:
            train(self.model, self.task.train, self.task.val, epochs=h.float_epochs, lr=0.05, progress=False)
            torch.save(self.model.state_dict(), path)
        self.float_acc = evaluate(self.model, self.task.test)

    report_only = False  # tables from the cached runs only (a missing run is left out of its row)

    def cached(self, name: str, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        path = self.out / f"{name}.json"
        if path.exists():
            return dict(json.loads(path.read_text()))
        if self.report_only:
            raise KeyError(name)
        t0 = time.perf_counter()
        blob = make()
        blob.setdefault("seconds", time.perf_counter() - t0)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(blob))
        tmp.replace(path)
        print(f"  {self.arch} {name}: {blob['seconds']:.0f} s", flush=True)
        return blob

    def task_for(self, seed: int) -> Any:
        h = self.h
        return noisy_digits(size=h.size, copies=h.copies, noise=h.noise, batch_size=h.batch_size, seed=seed)

    def config(self, method: str, b: float, seed: int) -> tuple[str, dict[str, Any]]:
        """(cache name, {"config", "avg_bits", "seconds"}) of one method at one budget and seed."""
        h, shape = self.h, self.task.input_shape
        if method.startswith("uniform"):
            cfg = sdk.MixedPrecisionConfig.uniform(self.model, int(method[-2]), int(method[-1]))
            return method, {
                "config": cfg.to_dict(),
                "avg_bits": float(int(method[-2]) * int(method[-1])) ** 0.5,
            }
        if method == CEILING:
            cfg = sdk.MixedPrecisionConfig.uniform(self.model, 2, 3)
            rep = sdk.bops(self.model, cfg, input_shape=shape)
            for layer in rep.layers:
                if layer.macs < 0.05 * rep.macs:
                    cfg[layer.name] = (8, 8)
            return "ceiling", {
                "config": cfg.to_dict(),
                "avg_bits": sdk.bops(self.model, cfg, input_shape=shape).avg_bits,
            }
        if method == "greedy":

            def greedy() -> dict[str, Any]:
                r = greedy_config(self.model, b, shape)
                return {"config": r.config.to_dict(), "avg_bits": r.avg_bits, "seconds": r.seconds}

            return f"greedy_b{b}", self.cached(f"greedy_b{b}", greedy)
        w, a = split_loader(self.task.train, 0.6, seed=seed)
        if method == "sensitivity":

            def sens() -> dict[str, Any]:
                r = sensitivity_config(self.model, a, b, batches=h.sens_batches)
                return {"config": r.config.to_dict(), "avg_bits": r.avg_bits, "seconds": r.seconds}

            return f"sens_b{b}_s{seed}", self.cached(f"sens_b{b}_s{seed}", sens)
        prefix, long, kw = BPNAS[method]
        epochs = h.long_epochs if long else h.search_epochs
        name = f"{prefix}_t{kw.get('theta_lr', THETA_LR):g}_b{b}_s{seed}_e{epochs}"

        def mp() -> dict[str, Any]:
            r = sdk.search(self.model, w, a, b_max=b, epochs=epochs, seed=seed, progress=False, **kw)
            return {"config": r.config.to_dict(), "avg_bits": r.avg_bits, "fill_moves": len(r.fill_moves),
                    "pre_fill_bits": r.pre_repair_avg_bits, "start": r.start,
                    "start_seconds": r.start_seconds, "start_led": r.start_config is not None}  # fmt: skip

        return name, self.cached(name, mp)

    def methods(self, b: float) -> list[str]:
        uni = [f"uniform{w}{a}" for w, a in uniform_inside(b)] if "uniform" in self.h.methods else []
        picked = [m for m in METHODS if m in self.h.methods and m != "uniform" and (m != CEILING or b <= 2.5)]
        return picked + uni

    def accuracy(self, key: str, config: dict[str, Any], seed: int) -> float:
        def make() -> dict[str, Any]:
            task = self.task_for(seed)
            cfg = sdk.MixedPrecisionConfig.from_dict(config)
            q = sdk.retrain(
                self.model, cfg, task.train, task.val, self.h.retrain_epochs, seed=seed, progress=False
            )
            return {"test_acc": evaluate(q, task.test)}

        return float(self.cached(f"acc_{key}_s{seed}_r{self.h.retrain_epochs}", make)["test_acc"])


def _ms(xs: Sequence[float]) -> str:
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.2f} ± {sd:.2f}"


Cell = dict[str, dict[int, tuple[float, float, float]]]  # method -> seed -> (test acc %, avg bits, cost s)


def measure(r: HardRunner, b: float) -> Cell:
    """Every method's retrained accuracy at ``b`` per seed (with report_only, missing runs are left out)."""
    cell: Cell = {}
    for seed in range(r.h.seeds):
        for method in r.methods(b):
            try:
                key, c = r.config(method, b, seed)
                acc = 100 * r.accuracy(key, c["config"], seed)
            except KeyError:  # report_only and this run is not there
                continue
            cell.setdefault(method, {})[seed] = (acc, float(c["avg_bits"]), float(c.get("seconds", 0.0)))
    return cell


def cell_lines(b: float, cell: Cell) -> list[str]:
    """One table row per method: mean ± std, and BP-NAS minus the method paired over their common seeds."""
    uniforms = [m for m in cell if m.startswith("uniform")]
    best_u = max(uniforms, key=lambda m: statistics.mean(v[0] for v in cell[m].values())) if uniforms else ""
    mp = cell.get("bp-nas", {})
    lines = []
    for method, runs in cell.items():
        accs = [v[0] for v in runs.values()]
        common = sorted(set(mp) & set(runs))
        diff = [mp[s][0] - runs[s][0] for s in common]
        tag = " (best uniform)" if method == best_u else ""
        paired, won = ("-", "-") if method == "bp-nas" or not diff else (
            _ms(diff), f"{sum(d > 0 for d in diff)}/{len(diff)}")  # fmt: skip
        bits, cost = (statistics.mean(v[i] for v in runs.values()) for i in (1, 2))
        lines.append(
            f"| {b} | {method}{tag} ({len(runs)} seeds) | {bits:.3f} | {_ms(accs)} | {paired} | {won} "
            f"| {cost:.1f} |"
        )
    return lines


VERSUS = "bp-nas sens-start"  # the variant compared, paired, with bp-nas, sensitivity and best uniform


def versus_lines(b: float, cell: Cell, variant: str = VERSUS) -> list[str]:
    """``variant`` minus bp-nas, the sensitivity knapsack and the best uniform inside, paired per seed."""
    runs = cell.get(variant, {})
    uniforms = [m for m in cell if m.startswith("uniform")]
    best_u = max(uniforms, key=lambda m: statistics.mean(v[0] for v in cell[m].values())) if uniforms else ""
    parts = []
    for other in ("bp-nas", "sensitivity", best_u):
        common = sorted(set(runs) & set(cell.get(other, {})))
        diff = [runs[s][0] - cell[other][s][0] for s in common]
        won = f"{sum(d > 0 for d in diff)}/{len(diff)}"
        parts.append(f"{_ms(diff)} ({won})" if diff else "-")
    cost = statistics.mean(v[2] for v in runs.values())
    return [f"| {b} | {len(runs)} | {' | '.join(parts)} | {best_u} | {cost:.1f} |"]


def run_arch(h: Hard, arch: str, out: Path) -> list[str]:
    r = HardRunner(h, arch, out)
    lines = [f"### {arch} (float test accuracy {100 * r.float_acc:.2f}%)", "",
             "| b_max | method | avg bits | test acc % (mean ± std) | MP − method, paired (mean ± std) "
             "| MP wins | cost s |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    versus = [f"{VERSUS} minus, paired (mean ± std, wins):", "",
              "| b_max | seeds | − bp-nas | − sensitivity | − best uniform | best uniform | cost s |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for b in h.b_maxes:
        cell = measure(r, b)
        if cell:
            lines += cell_lines(b, cell)
        if cell.get(VERSUS):
            versus += versus_lines(b, cell)
    return lines + ([""] + versus if len(versus) > 4 else [])


def hard_study(out: Path, archs: Sequence[str] | None = None, report_only: bool = False, **over: Any) -> None:
    h = Hard(**{**asdict(Hard()), **{k: v for k, v in over.items() if v is not None}})
    HardRunner.report_only = report_only
    report = ["# Search study on noisy distorted digits (harder than digits)", "", f"`{h}`", ""]
    for arch in archs or h.archs:
        lines = run_arch(h, arch, out)
        print("\n".join(lines), flush=True)
        report += [*lines, ""]
    path = out / f"HARD_{'_'.join(archs or h.archs)}.md"
    path.write_text("\n".join(report) + "\n")
    print(f"wrote {path}")
