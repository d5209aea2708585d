"""The paper's Table 3 (Sect. 4.3) in miniature: float, uniform (8,8) PTQ, uniform (4,4) QAT and BP-NAS mixed
precision at Bmax = 4 (the paper's detection candidates, paths sampled by probability, QAT-retrained), on
the synthetic shapes scenes with the FCOS-style ResNet detector; mAP@[.5:.95] and mAP@.5 by pycocotools.

One float model (seed 0, distribution reshaping) is shared by every row, as the paper quantizes one trained
network; each seed then re-runs calibration, QAT, the search and its retraining. Every QAT row retrains for
the same number of epochs. Prints a mean +- std table (the one docs/detection.md records).

    OMP_NUM_THREADS=2 nice python examples/detection_table3.py            # ~25 min on 2 idle cores
    python examples/detection_table3.py --quick                          # smoke run, ~2 min
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import calibration
import sdk
from sdk.detection.loss import DetectionLoss

#: Sect. 4.3: "{(2, 4), (3, 3), (3, 4), (3, 5), (4, 4), (4, 6), (6, 4), (4, 8)}"
DETECTION_CANDIDATES = ((2, 4), (3, 3), (3, 4), (3, 5), (4, 4), (4, 6), (6, 4), (4, 8))


def _row(name: str, model: torch.nn.Module, cfg: sdk.MixedPrecisionConfig | None, q, val, shape) -> dict:
    m = sdk.evaluate(q, val)
    rep = sdk.bops(
        model, cfg if cfg is not None else sdk.MixedPrecisionConfig.uniform(model, 32, 32), input_shape=shape
    )
    return {"row": name, "map": m["map"], "map50": m["map50"], "avg_bits": rep.avg_bits, "b_comp": rep.b_comp}


def run(args: argparse.Namespace) -> list[dict]:
    train, val = sdk.data.shapes(n_train=args.n_train, n_val=args.n_val, size=args.size, seed=0)
    shape = train.input_shape
    model = sdk.models.create(args.model, num_classes=train.num_classes)
    loss = DetectionLoss(train.num_classes, model.stride)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    if args.float_weights is not None and args.float_weights.is_file():
        model.load_state_dict(torch.load(args.float_weights))
    else:
        sdk.train(
            model,
            train.loader(args.batch, shuffle=True),
            epochs=args.float_epochs,
            lr=args.lr,
            loss_fn=loss,
            progress=False,
            seed=0,
        )
        if args.float_weights is not None:
            torch.save(model.state_dict(), args.float_weights)
    rows = [_row("float", model, None, model, val, shape)]
    print(f"float: mAP {rows[0]['map']:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    w_set, a_set = train.split(0.6, seed=0)
    for seed in args.seeds:
        loader = train.loader(args.batch, shuffle=True, seed=seed)
        if args.only_mp:
            _mp_row(args, model, train, val, w_set, a_set, loss, loader, seed, rows)
            print(f"seed {seed}: MP {rows[-1]['map']:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
            continue
        cfg8 = sdk.MixedPrecisionConfig.uniform(model, 8, 8)
        ptq = calibration.calibrate(sdk.quantize(model, cfg8), train.loader(args.batch), method="percentile")
        rows.append({**_row("uniform (8,8) PTQ", model, cfg8, ptq.eval(), val, shape), "seed": seed})
        cfg4 = sdk.MixedPrecisionConfig.uniform(model, 4, 4)
        q4 = sdk.retrain(
            model,
            cfg4,
            loader,
            epochs=args.qat_epochs,
            lr=args.qat_lr,
            seed=seed,
            loss_fn=loss,
            progress=False,
        )
        rows.append({**_row("uniform (4,4) QAT", model, cfg4, q4, val, shape), "seed": seed})
        _mp_row(args, model, train, val, w_set, a_set, loss, loader, seed, rows)
        done = ", ".join(f"{r['row']} {r['map']:.3f}" for r in rows[-3:])
        print(f"seed {seed}: {done} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return rows


def _mp_row(args, model, train, val, w_set, a_set, loss, loader, seed: int, rows: list[dict]) -> None:
    """BP-NAS at Bmax = 4 (detection candidates, sampled paths), then QAT retraining of its config."""
    shape = train.input_shape
    result = sdk.search(
        model,
        w_set.loader(args.batch, shuffle=True, seed=seed),
        a_set.loader(args.batch, shuffle=True, seed=seed),
        b_max=4.0,
        candidates=DETECTION_CANDIDATES,
        epochs=args.search_epochs,
        seed=seed,
        mode="sampled",
        weight_paths="sampled",
        loss_fn=loss,
        progress=False,
        input_shape=shape,
    )
    qmp = sdk.retrain(
        model,
        result.config,
        loader,
        epochs=args.qat_epochs,
        lr=args.qat_lr,
        seed=seed,
        loss_fn=loss,
        progress=False,
    )
    rows.append({**_row("BP-NAS MP, Bmax=4", model, result.config, qmp, val, shape), "seed": seed})
    print(f"  searched config: {dict(result.config.items())}", flush=True)


def table(rows: list[dict]) -> str:
    def ms(values: list[float]) -> str:
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.3f} +- {sd:.3f}"

    lines = [f"{'row':<20} {'n':>2} {'mAP@[.5:.95]':>16} {'mAP@.5':>16} {'avg bits':>9} {'B-Comp':>8}"]
    for name in dict.fromkeys(r["row"] for r in rows):
        rs = [r for r in rows if r["row"] == name]
        bits = statistics.mean(r["avg_bits"] for r in rs)
        comp = statistics.mean(r["b_comp"] for r in rs)
        lines.append(
            f"{name:<20} {len(rs):>2} {ms([r['map'] for r in rs]):>16} {ms([r['map50'] for r in rs]):>16} "
            f"{bits:>9.2f} {comp:>7.2f}x"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="fcos_resnet8")
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--n-val", type=int, default=300)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--float-epochs", type=int, default=15)
    ap.add_argument("--qat-epochs", type=int, default=5)
    ap.add_argument("--search-epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--qat-lr", type=float, default=0.01)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--only-mp", action="store_true", help="only the BP-NAS rows (reuse --float-weights)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs")
    ap.add_argument("--float-weights", type=Path, default=None, help="reuse (or save) the float model here")
    ap.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    args = ap.parse_args()
    if args.quick:
        args.n_train, args.n_val, args.float_epochs, args.qat_epochs, args.search_epochs = 64, 16, 1, 1, 1
        args.seeds = args.seeds[:2]
    rows = run(args)
    print(table(rows))
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
