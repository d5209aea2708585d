"""Search under BOPs + weight memory + MAC-array cycles (issue 16): each constraint binding in turn.

digits_cnn (``--width``) on the embedded digits, target "integer" (packed weights: weight bytes at the
searched w bits; cycles on its 16x16 bit-serial MAC array). First a BOPs-only search at ``--b-max`` sets the
reference weight KB and cycles of that config (KB0, C0). Then three searches with all three constraints
active, each with one of them tight and the others loose:

- "BOPs binds":      b_max,  weight_kb = loose * KB0,  cycles = loose * C0
- "weight_kb binds": b_max,  weight_kb = KB_min + tight * (KB0 - KB_min),  cycles = loose * C0
- "cycles binds":    b_max,  weight_kb = loose * KB0,  cycles = C_min + tight * (C0 - C_min)

(KB_min, C_min: every layer at (2, 3), the least the candidates reach.)

Every result is recounted independently (``result.certificate``: avg bits by ``sdk.bops``, weight KB from
the quantized model's weight tensors, cycles by the target's cost model), then every config is retrained alike
and its test accuracy set against the BOPs-only search's (what the binding constraint cost). Prints a
markdown table (docs/search.md, "More than BOPs").

    nice env OMP_NUM_THREADS=1 .venv/bin/python examples/multi_constraint_study.py            # ~6 min CPU
    nice env OMP_NUM_THREADS=1 .venv/bin/python examples/multi_constraint_study.py --seeds 1  # ~2 min
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

import sdk
from sdk.nas.api import prepare_space
from sdk.nas.budget import build_constraints
from sdk.nas.certificate import recount
from sdk.nas.fill import upgrades
from sdk.training import evaluate, train


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--b-max", type=float, default=3.0)
    p.add_argument(
        "--tight",
        type=float,
        default=0.1,
        help="tight limit: this fraction of the way from the floor to the reference",
    )
    p.add_argument("--loose", type=float, default=1.5, help="loose limit as a multiple of the reference")
    p.add_argument("--epochs", type=int, default=8, help="search epochs")
    p.add_argument("--float-epochs", type=int, default=15)
    p.add_argument("--retrain-epochs", type=int, default=6)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--target", default="integer")
    return p.parse_args()


def _search(model: Any, data: Any, a: argparse.Namespace, seed: int, budget: dict[str, float] | None) -> Any:
    weights, arch = data.search_split(seed=seed)
    return sdk.search(model, weights, arch, b_max=a.b_max, epochs=a.epochs, seed=seed, progress=False,
                      theta_lr=0.05, target=a.target, budget=budget)  # fmt: skip


def _acc(model: Any, data: Any, config: Any, a: argparse.Namespace, seed: int) -> float:
    q = sdk.retrain(model, config, data.train, None, epochs=a.retrain_epochs, seed=seed, progress=False)
    return 100.0 * float(evaluate(q, data.test))


def _binding(
    model: Any, shape: Any, a: argparse.Namespace, budget: dict[str, float], config: Any
) -> set[str]:
    """The constraints that alone block some upgrade of ``config`` (a group to a dominating, dearer pair)."""
    space = prepare_space(model, shape, sdk.nas.PAPER_CANDIDATES, "layer", a.target)
    cons = build_constraints(space, a.b_max, budget, a.target)
    choice = [g.candidates.index(config[g.layers[0]]) for g in space.groups]
    out = set()
    for gi in range(len(space.groups)):
        for j in upgrades(space, gi, choice[gi]):
            over = [c.name for c in cons if not c.inside([*choice[:gi], j, *choice[gi + 1 :]])]
            if len(over) == 1:
                out.add(over[0])
    return out


def _row(name: str, certs: list[Any], binds: list[set[str]], accs: list[float], free: list[float]) -> str:
    checks = {c.name: [cert[c.name] for cert in certs] for c in certs[0].checks}
    cells = []
    for k, v in checks.items():
        d = 0 if k == "cycles" else 3
        use = 100 * statistics.mean(c.value / c.limit for c in v)
        cells.append(f"{statistics.mean(c.value for c in v):,.{d}f} / {v[0].limit:,.{d}f} ({use:.0f}%)")
    n = len(certs)
    bind = ", ".join(f"{k} {sum(k in b for b in binds)}/{n}" for k in checks if any(k in b for b in binds))
    inside = sum(all(c.inside for c in cert.checks) for cert in certs)
    diffs = [m - f for m, f in zip(accs, free)]
    sd = statistics.stdev(diffs) if n > 1 else float("nan")
    return (f"| {name} | {' | '.join(cells)} | {bind or 'none'} | {inside}/{n} | {statistics.mean(accs):.2f} "
            f"| {statistics.mean(free):.2f} | {statistics.mean(diffs):+.2f} +- {sd:.2f} |")  # fmt: skip


def main() -> None:
    a = _args()
    t0 = time.perf_counter()
    data = sdk.data.digits(batch_size=32, seed=0)
    torch.manual_seed(0)
    model = sdk.models.digits_cnn(num_classes=10, width=a.width)
    train(model, data.train, data.val, epochs=a.float_epochs, reshape=True, progress=False, seed=0)
    shape = (1, *data.input_shape[1:])
    ref_budget = {"weight_kb": 1e9, "cycles": 1e18}
    free = [_search(model, data, a, s, None) for s in range(a.seeds)]
    ref = [recount(model, r.config, shape, a.b_max, ref_budget, a.target) for r in free]
    kb0 = statistics.mean(c["weight_kb"].value for c in ref)
    c0 = statistics.mean(c["cycles"].value for c in ref)
    low = recount(model, sdk.MixedPrecisionConfig.uniform(model, 2, 3), shape, 8.0, ref_budget, a.target)
    kb_t = low["weight_kb"].value + a.tight * (kb0 - low["weight_kb"].value)
    c_t = low["cycles"].value + a.tight * (c0 - low["cycles"].value)
    free_acc = [_acc(model, data, r.config, a, s) for s, r in enumerate(free)]
    runs = {
        "BOPs binds": {"weight_kb": a.loose * kb0, "cycles": a.loose * c0},
        "weight_kb binds": {"weight_kb": kb_t, "cycles": a.loose * c0},
        "cycles binds": {"weight_kb": a.loose * kb0, "cycles": c_t},
    }
    print(f"digits_cnn width {a.width}, target {a.target!r}, b_max {a.b_max}, {a.epochs} search epochs, "
          f"{a.retrain_epochs} QAT epochs, {a.seeds} seed(s); BOPs-only reference: {kb0:.3f} KB, "
          f"{c0:,.0f} cycles, test acc {statistics.mean(free_acc):.2f}%\n")  # fmt: skip
    print(
        "| run | avg bits / b_max | weight KB / limit | cycles / limit | binds (alone blocks an upgrade) "
        "| all inside | test acc % | BOPs-only acc % | acc difference (pt, paired) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, budget in runs.items():
        certs, accs, binds = [], [], []
        for s in range(a.seeds):
            res = _search(model, data, a, s, budget)
            certs.append(recount(model, res.config, shape, a.b_max, budget, a.target))  # independent recount
            binds.append(_binding(model, shape, a, budget, res.config))
            accs.append(_acc(model, data, res.config, a, s))
        print(_row(name, certs, binds, accs, free_acc))
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
