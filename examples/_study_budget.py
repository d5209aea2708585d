"""Budget use (``search_study.py --budget-use``): does every search spend its budget?

digits_cnn width 4 on the 8x8 digits (the tiniest model and data, so 16-epoch searches stay cheap: batch
128, 6 steps per epoch), untrained and float-trained, b_max in {2.5, 3, 3.5, 4} x search epochs {3, 16} x
10 seeds. Per cell: share inside b_max recounted by ``sdk.bops``, mean avg_bits / b_max, and the number of
configs with an affordable upgrade left (a dearer pair with >= bits in one layer that still fits), for the
returned config and for the Eq. 8 argmax config before the fill.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import torch

import sdk
from sdk.nas import PAPER_CANDIDATES
from sdk.training import train


def upgrades_left(model: torch.nn.Module, config: sdk.MixedPrecisionConfig, b_max: float, shape: Any) -> int:
    n = 0
    for name, (w0, a0) in config.items():
        for w, a in PAPER_CANDIDATES:
            if w >= w0 and a >= a0 and w * a > w0 * a0:
                trial = config.copy()
                trial[name] = (w, a)
                n += sdk.bops(model, trial, input_shape=shape).within(b_max)
    return n


def budget_use(out: Path, seeds: int = 10, epochs: tuple[int, ...] = (3, 16)) -> list[str]:
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    data = sdk.data.digits(seed=0, batch_size=128)
    shape = data.input_shape
    models = {}
    for kind in ("untrained", "trained"):
        torch.manual_seed(0)
        m = sdk.models.digits_cnn(num_classes=data.num_classes, width=4)
        if kind == "trained":
            train(m, data.train, data.val, epochs=10, lr=0.05, progress=False)
        models[kind] = m
    lines = ["| model | search epochs | b_max | searches | inside (sdk.bops) | mean avg bits / b_max | "
             "configs with an upgrade left | same before the fill: bits / b_max, upgrades left |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for kind, model in models.items():
        for e in epochs:
            for b in (2.5, 3.0, 3.5, 4.0):
                rows = []
                for seed in range(seeds):
                    path = out / f"{kind}_e{e}_b{b}_s{seed}.json"
                    if not path.exists():
                        w, a = data.search_split(seed=seed)
                        r = sdk.search(model, w, a, b_max=b, epochs=e, seed=seed, progress=False)
                        row = {
                            "inside": sdk.bops(model, r.config, input_shape=shape).within(b),
                            "bits": r.avg_bits,
                            "left": upgrades_left(model, r.config, b, shape),
                            "pre_bits": r.pre_repair_avg_bits,
                            "pre_left": upgrades_left(model, r.pre_repair_config, b, shape),
                        }
                        path.write_text(json.dumps(row))
                    rows.append(json.loads(path.read_text()))
                n = len(rows)
                lines.append(
                    f"| {kind} | {e} | {b} | {n} | {100 * sum(r['inside'] for r in rows) / n:.0f}% | "
                    f"{statistics.mean(r['bits'] for r in rows) / b:.3f} | "
                    f"{sum(r['left'] > 0 for r in rows)} | "
                    f"{statistics.mean(r['pre_bits'] for r in rows) / b:.3f}, "
                    f"{sum(r['pre_left'] > 0 for r in rows)} |"
                )
                print(lines[-1], flush=True)
    (out / "BUDGET.md").write_text("\n".join(lines) + "\n")
    return lines
