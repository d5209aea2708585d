"""The search study on tasks harder than digits (``search_study.py --hard``): for each architecture, b_max and
seed, BP-NAS (short search from the float model) vs every uniform config inside the budget vs the greedy
and the measured-sensitivity knapsack baselines, every config retrained with the same recipe and seed.
Every search and retrain is cached as JSON under OUT/<arch>/, so the study resumes and can be split over
processes (``--arch``); the tables go to OUT/HARD.md (means, stds, paired differences, search cost).
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class Hard:
    archs: tuple[str, ...] = ("mobilenet", "resnet")
    b_maxes: tuple[float, ...] = (2.5, 3.0, 3.5, 4.0)
    seeds: int = 5
    size: int = 16
    copies: int = 1
    noise: float = 0.2
    width: int = 8
    float_epochs: int = 25
    search_epochs: int = 4
    retrain_epochs: int = 3
    batch_size: int = 64
    sens_batches: int = 4


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

    report_only = False  # tables from the cached runs only (a seed with a missing run is left out)

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

    def configs(self, b: float, seed: int) -> dict[str, dict[str, Any]]:
        """method -> {"config", "avg_bits", "seconds"} for BP-NAS, greedy, sensitivity and the uniforms."""
        h, shape = self.h, self.task.input_shape
        w, a = split_loader(self.task.train, 0.6, seed=seed)

        def mp() -> dict[str, Any]:
            r = sdk.search(self.model, w, a, b_max=b, epochs=h.search_epochs, seed=seed, progress=False)
            return {"config": r.config.to_dict(), "avg_bits": r.avg_bits, "fill_moves": len(r.fill_moves),
                    "pre_fill_bits": r.pre_repair_avg_bits}  # fmt: skip

        def greedy() -> dict[str, Any]:
            r = greedy_config(self.model, b, shape)
            return {"config": r.config.to_dict(), "avg_bits": r.avg_bits, "seconds": r.seconds}

        def sens() -> dict[str, Any]:
            r = sensitivity_config(self.model, a, b, batches=h.sens_batches)
            return {"config": r.config.to_dict(), "avg_bits": r.avg_bits, "seconds": r.seconds}

        def mpk() -> dict[str, Any]:
            r = sdk.search(self.model, w, a, b_max=b, epochs=h.search_epochs, seed=seed, progress=False,
                           finish="knapsack")  # fmt: skip
            return {"config": r.config.to_dict(), "avg_bits": r.avg_bits, "fill_moves": len(r.fill_moves)}

        def mpt() -> dict[str, Any]:
            r = sdk.search(self.model, w, a, b_max=b, epochs=h.search_epochs, seed=seed, progress=False,
                           theta_lr=0.05)  # fmt: skip
            return {"config": r.config.to_dict(), "avg_bits": r.avg_bits, "fill_moves": len(r.fill_moves)}

        out = {
            "bp-nas": self.cached(f"mp_b{b}_s{seed}_e{h.search_epochs}", mp),
            "bp-nas theta_lr 0.05": self.cached(f"mpt_b{b}_s{seed}_e{h.search_epochs}", mpt),
            "bp-nas+knapsack": self.cached(f"mpk_b{b}_s{seed}_e{h.search_epochs}", mpk),
            "greedy": self.cached(f"greedy_b{b}", greedy),
            "sensitivity": self.cached(f"sens_b{b}_s{seed}", sens),
        }
        for p in uniform_inside(b):
            cfg = sdk.MixedPrecisionConfig.uniform(self.model, *p)
            out[f"uniform{p[0]}{p[1]}"] = {"config": cfg.to_dict(), "avg_bits": float(p[0] * p[1]) ** 0.5}
        return out

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


def run_arch(h: Hard, arch: str, out: Path) -> list[str]:
    r = HardRunner(h, arch, out)
    lines = [f"### {arch} (float test accuracy {100 * r.float_acc:.2f}%)", "",
             "| b_max | method | avg bits | test acc % (mean ± std) | MP − method, paired (mean ± std) "
             "| MP wins | cost s |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for b in h.b_maxes:
        accs: dict[str, list[float]] = {}
        bits: dict[str, list[float]] = {}
        cost: dict[str, list[float]] = {}
        for seed in range(h.seeds):
            try:
                row = {}
                for method, c in r.configs(b, seed).items():
                    key = method if method.startswith("uniform") else f"{method}_b{b}" + (
                        "" if method == "greedy" else f"_s{seed}")  # fmt: skip
                    row[method] = (100 * r.accuracy(key, c["config"], seed), c)
            except KeyError:  # report_only and this seed is not complete
                continue
            for method, (acc, c) in row.items():
                accs.setdefault(method, []).append(acc)
                bits.setdefault(method, []).append(float(c["avg_bits"]))
                cost.setdefault(method, []).append(float(c.get("seconds", 0.0)))
        if not accs:
            continue
        uniforms = [m for m in accs if m.startswith("uniform")]
        best_u = max(uniforms, key=lambda m: statistics.mean(accs[m]))
        for method in [
            "bp-nas",
            "bp-nas theta_lr 0.05",
            "bp-nas+knapsack",
            "greedy",
            "sensitivity",
            *uniforms,
        ]:
            diff = [x - y for x, y in zip(accs["bp-nas"], accs[method])]
            wins = sum(d > 0 for d in diff)
            tag = " (best uniform)" if method == best_u else ""
            paired, won = ("-", "-") if method == "bp-nas" else (_ms(diff), f"{wins}/{len(diff)}")
            lines.append(
                f"| {b} | {method}{tag} ({len(accs[method])} seeds) | {statistics.mean(bits[method]):.3f} | "
                f"{_ms(accs[method])} | {paired} | {won} | {statistics.mean(cost[method]):.1f} |"
            )
    return lines


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
