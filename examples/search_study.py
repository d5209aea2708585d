"""BP-NAS on the embedded digits data set (digits_cnn, the paper's 8 candidates): does it keep its promises?

The model is digits_cnn at width 4 (``--width``): at the demo width 32, digits has no bit sensitivity above
(3, 3), so no search should spend a larger budget (docs/search_study/STUDY.md).

1. Guarantee: b_max in {2.5, 3.0, 3.5, 4.0} x N seeds -> share inside b_max (sdk.bops), share inside before
   any repair, mean avg bits / b_max.
2. Quality: retrained MP at b_max=3 vs uniform (3,3), same epochs, K seeds, test accuracy mean +- std.
3. DNAS baseline: lambda * E(SN) without barrier; how many lambda values until a result is inside b_max=3.
4. Prob-1 ablation: mean max_j p_ij at the end with and without Prob-1 (and Fig. 4).
Figures (Fig. 2-4 of the paper) go to OUT/figs, every search result to OUT/runs (re-runs reuse them, so
an interrupted study resumes), the tables to OUT/STUDY.md.

    .venv/bin/python examples/search_study.py --quick          # a few minutes
    .venv/bin/python examples/search_study.py                   # the full study (~15 min on 2 busy cores)
    .venv/bin/python examples/search_study.py --b-max 2.5 3.0 --only-grid   # split the grid over processes
    .venv/bin/python examples/search_study.py --hard --arch mobilenet    # noisy digits, two archs (HARD_*.md)
    .venv/bin/python examples/search_study.py --hard --b-max 2.5 --methods bp-nas "bp-nas 16 epochs"
    .venv/bin/python examples/search_study.py --hard --report-only       # the tables from the cached runs
    .venv/bin/python examples/search_study.py --hard --arch resnet --methods "bp-nas sens-start"
    .venv/bin/python examples/search_study.py --budget-use               # budget use, 160 searches
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

import sdk
from examples._study_hard import METHODS
from sdk.nas import SearchResult, dnas_search, lambda_sweep
from sdk.training import evaluate, train


@dataclass(frozen=True)
class Study:
    """Every knob of the study (recorded in STUDY.md)."""

    b_maxes: tuple[float, ...] = (2.5, 3.0, 3.5, 4.0)
    seeds: int = 10
    epochs: int = 16
    batch_size: int = 32
    theta_lr: float = 0.05
    float_epochs: int = 30
    retrain_epochs: int = 30
    quality_seeds: int = 5
    fig3_b_maxes: tuple[float, ...] = (3.0, 4.0)
    dnas_max_runs: int = 8
    ablation_seeds: int = 3
    width: int = 4


QUICK = Study(seeds=2, epochs=8, float_epochs=10, retrain_epochs=4, quality_seeds=2, fig3_b_maxes=(3.0,),
              dnas_max_runs=4, ablation_seeds=1)  # fmt: skip


def mean_std(xs: Sequence[float]) -> str:
    if not xs:
        return "-"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.3f} +- {sd:.3f}"


class Runner:
    """Data, the float model and cached searches/retrains for one study directory."""

    def __init__(self, study: Study, out: Path) -> None:
        self.study, self.out = study, out
        (out / "runs").mkdir(parents=True, exist_ok=True)
        torch.set_num_threads(1)
        self.data = sdk.data.digits(seed=0, batch_size=study.batch_size)
        torch.manual_seed(0)  # the float model (and so every search) is the same in every process
        self.model = sdk.models.digits_cnn(num_classes=self.data.num_classes, width=study.width)
        path = out / f"float_w{study.width}_e{study.float_epochs}.pt"
        if path.exists():
            self.model.load_state_dict(torch.load(path, weights_only=True))
        else:
            train(self.model, self.data.train, self.data.val, epochs=study.float_epochs, reshape=True,
                  progress=False, seed=0)  # fmt: skip
            torch.save(self.model.state_dict(), path)
        self.float_acc = evaluate(self.model, self.data.test)

    def cached(self, name: str, make: Callable[[], Any], kind: str = "result") -> Any:
        path = self.out / "runs" / f"{name}.json"
        if path.exists():
            blob = json.loads(path.read_text())
            return SearchResult.from_dict(blob) if kind == "result" else blob
        t0 = time.perf_counter()
        value = make()
        blob = value.to_dict() if kind == "result" else value
        path.write_text(json.dumps(blob))
        print(f"  {name}: {time.perf_counter() - t0:.0f} s", flush=True)
        return value

    def search(self, b_max: float, seed: int, **kw: Any) -> SearchResult:
        s = self.study
        tag = "".join(f"_{k}{v}" for k, v in sorted(kw.items()))
        name = f"bp_b{b_max}_s{seed}_e{s.epochs}{tag}"

        def make() -> SearchResult:
            w, a = self.data.search_split(seed=seed)
            return sdk.search(self.model, w, a, b_max=b_max, epochs=s.epochs, seed=seed, progress=False,
                              theta_lr=s.theta_lr, **kw)  # fmt: skip

        return self.cached(name, make)

    def accuracy(self, name: str, config: sdk.MixedPrecisionConfig, seed: int) -> float:
        def make() -> dict[str, float]:
            data = sdk.data.digits(seed=seed, batch_size=self.study.batch_size)  # same split, seeded order
            q = sdk.retrain(self.model, config, data.train, data.val, self.study.retrain_epochs, seed=seed,
                            progress=False)  # fmt: skip
            return {"test_acc": evaluate(q, data.test)}

        return float(self.cached(f"acc_{name}_r{self.study.retrain_epochs}", make, kind="dict")["test_acc"])


def guarantee_table(runner: Runner) -> tuple[list[str], dict[float, list[SearchResult]]]:
    s = runner.study
    grid = {b: [runner.search(b, seed) for seed in range(s.seeds)] for b in s.b_maxes}
    lines = [
        "| b_max | searches | inside (sdk.bops) | inside before repair | avg bits (mean +- std) "
        "| mean / b_max | min avg bits | mean max p | distinct configs | configs (seed: w,a per layer) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for b, rs in grid.items():
        for r in rs:  # the guarantee, re-checked from scratch with the one cost function
            assert sdk.bops(runner.model, r.config, input_shape=runner.data.input_shape).within(b)
        inside = sum(r.within for r in rs)
        pre = sum(r.pre_repair_avg_bits <= b * (1 + 1e-12) for r in rs)
        bits = [r.avg_bits for r in rs]
        lines.append(
            f"| {b} | {len(rs)} | {100 * inside / len(rs):.0f}% | {100 * pre / len(rs):.0f}% "
            f"| {mean_std(bits)} | {statistics.mean(bits) / b:.3f} | {min(bits):.3f} | "
            f"{statistics.mean(r.history.final_max_prob() for r in rs):.3f} | "
            f"{len({str(r.config) for r in rs})} | {'; '.join(f'{r.seed}: {_pairs(r)}' for r in rs)} |"
        )
    return lines, grid


def _pairs(r: SearchResult) -> str:
    return " ".join(f"{w}{a}" for w, a in (r.config[k] for k in r.config))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 seeds, 6 search epochs: a few minutes")
    ap.add_argument("--out", default=None, help="output directory (default runs/search_study[_quick])")
    ap.add_argument("--b-max", type=float, nargs="+", default=None)
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--width", type=int, default=None, help="digits_cnn width (channels of the first stage)")
    ap.add_argument("--only-grid", action="store_true", help="run the b_max x seed searches only")
    ap.add_argument("--hard", action="store_true", help="the study on noisy digits with two architectures")
    ap.add_argument("--arch", nargs="+", default=None, help="--hard: mobilenet and/or resnet")
    methods = ", ".join(METHODS).replace("%", "%%")  # argparse %-formats help strings
    ap.add_argument("--methods", nargs="+", default=None, help="--hard: a subset of " + methods)
    ap.add_argument("--report-only", action="store_true", help="--hard: tables from finished runs only")
    ap.add_argument("--budget-use", action="store_true", help="budget use: 10 seeds x b_max x {3, 16} epochs")
    args = ap.parse_args()
    if args.budget_use:
        from examples._study_budget import budget_use

        budget_use(Path(args.out or "runs/budget_use"), seeds=args.seeds or 10)
        return
    if args.hard:
        from examples._study_hard import hard_study

        b_maxes = tuple(args.b_max) if args.b_max else None
        out = Path(args.out or "runs/search_study_hard")
        hard_study(
            out,
            args.arch,
            args.report_only,
            b_maxes=b_maxes,
            seeds=args.seeds,
            search_epochs=args.epochs,
            methods=tuple(args.methods) if args.methods else None,
        )
        return
    study = QUICK if args.quick else Study()
    over = {
        "b_maxes": tuple(args.b_max) if args.b_max else None,
        "seeds": args.seeds,
        "epochs": args.epochs,
        "width": args.width,
    }
    study = Study(**{**asdict(study), **{k: v for k, v in over.items() if v is not None}})
    out = Path(args.out or ("runs/search_study_quick" if args.quick else "runs/search_study"))
    runner = Runner(study, out)
    print(f"study {study}\nfloat digits_cnn test accuracy {100 * runner.float_acc:.2f}%", flush=True)

    lines, grid = guarantee_table(runner)
    title = f"# BP-NAS study on digits (digits_cnn width {study.width}, 8 candidates)"
    report = [title, "", f"`{study}`", "",
              f"Float model ({study.float_epochs} epochs, reshaped): test acc {100 * runner.float_acc:.2f}%.",
              "", "## 1. Budget guarantee", "", *lines]  # fmt: skip
    print("\n".join(lines), flush=True)
    if args.only_grid:
        return

    # 2. quality at b_max = 3
    b3 = 3.0
    mp, uni = [], []
    for seed in range(study.quality_seeds):
        r = runner.search(b3, seed)
        mp.append(runner.accuracy(f"mp_b{b3}_s{seed}_e{study.epochs}", r.config, seed))
        uni.append(
            runner.accuracy(f"uniform33_s{seed}", sdk.MixedPrecisionConfig.uniform(runner.model, 3, 3), seed)
        )
    mp_bits = [runner.search(b3, s).avg_bits for s in range(study.quality_seeds)]
    q = [
        "| model | avg bits | test accuracy % (mean +- std) |",
        "|---|---|---|",
        f"| BP-NAS MP, b_max=3 | {mean_std(mp_bits)} | {mean_std([100 * a for a in mp])} |",
        f"| uniform (3,3) | 3.000 | {mean_std([100 * a for a in uni])} |",
    ]
    per_seed = ", ".join(f"{100 * a:.2f}/{100 * b:.2f}" for a, b in zip(mp, uni))
    q += ["", f"Per seed MP/uniform: {per_seed}. Same retraining recipe and epochs ({study.retrain_epochs})."]
    report += ["", "## 2. Quality: retrained MP vs uniform (3,3)", "", *q]
    print("\n".join(q), flush=True)

    # 3. DNAS lambda sweep
    w, a = runner.data.search_split(seed=0)

    def dnas(lam: float) -> SearchResult:
        return runner.cached(
            f"dnas_b{b3}_lam{lam:.6g}_e{study.epochs}",
            lambda: dnas_search(
                runner.model, w, a, lam, b_max=b3, epochs=study.epochs, seed=0, theta_lr=study.theta_lr
            ),  # fmt: skip
        )

    sweep = lambda_sweep(dnas, b3, start=1e-3, factor=4.0, max_runs=study.dnas_max_runs)
    d = ["| run | lambda | avg bits | inside b_max=3 |", "|---|---|---|---|"]
    d += [f"| {i + 1} | {lam:.4g} | {bits:.3f} | {'yes' if ok else 'no'} |" for i, (lam, bits, ok) in
          enumerate(sweep.runs)]  # fmt: skip
    d += ["", f"Searches until the first result inside b_max: {sweep.needed or 'none within the budget'}; "
          f"until one inside and >= 0.9 b_max: {sweep.needed_close or 'none within the budget'} "
          f"(of {len(sweep.runs)} run). BP-NAS needs one search per budget."]  # fmt: skip
    report += ["", "## 3. DNAS-style lambda * E(SN) baseline (no barrier), b_max = 3", "", *d]
    print("\n".join(d), flush=True)

    # 4. Prob-1 ablation
    with_p1 = [runner.search(b3, s) for s in range(study.ablation_seeds)]
    without = [runner.search(b3, s, prob1_weight=0.0) for s in range(study.ablation_seeds)]
    pm = [
        "| search (b_max=3) | mean max_j p_ij at the end | avg bits | inside before repair |",
        "|---|---|---|---|",
    ]
    for label, rs in (("with Prob-1", with_p1), ("without Prob-1", without)):
        pm.append(
            f"| {label} | {mean_std([r.history.final_max_prob() for r in rs])} | "
            f"{mean_std([r.avg_bits for r in rs])} | {sum(not r.repaired for r in rs)}/{len(rs)} |"
        )
    report += ["", "## 4. Prob-1 ablation", "", *pm]
    print("\n".join(pm), flush=True)

    # figures
    fig3 = [r for b in study.fig3_b_maxes for r in grid.get(b, [])]
    accs = [runner.accuracy(f"mp_b{r.b_max}_s{r.seed}_e{study.epochs}", r.config, r.seed) for r in fig3]
    paths = with_p1[0].plot(out / "figs", results=fig3, accuracies=accs, without_prob1=without[0])
    report += ["", "## Figures", "", *[f"![{p.stem}](figs/{p.name})" for p in paths]]
    (out / "STUDY.md").write_text("\n".join(report) + "\n")
    print(f"wrote {out / 'STUDY.md'} and {', '.join(str(p) for p in paths)}")
    assert not math.isnan(runner.float_acc)


if __name__ == "__main__":
    main()
