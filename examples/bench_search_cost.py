"""What one supernet training step costs next to plain QAT (a benchmark: prints ratios, asserts nothing).

ResNet20 at 32x32, batch 128, the paper's 8 candidates. Timed side by side, interleaved over rounds (median):
- qat:            one fixed-precision (4,4) QAT step of sdk.quantize(model) (forward, backward, SGD step)
- full W step:    Algorithm 1's weight step on the exact supernet, one conv per activation bit-width (3)
- naive W step:   the same mixture computed as Eq. 6 reads, one conv per candidate (8)
- sampled W step: one path drawn per layer (ProxylessNAS-style gates)
- full / sampled theta step: the architecture step (val CE + barrier + Prob-1, theta gradients only;
                  sampled runs two paths with binary gates)

    .venv/bin/python examples/bench_search_cost.py [--batch 128] [--rounds 3] [--threads 1]
    .venv/bin/python examples/bench_search_cost.py --against OTHER_TREE [--rounds 3]

``--against`` times whole search epochs instead: ``sdk.search`` on digits_cnn (width 8, batch 64, 4
epochs, 1 of them warm-up) in two fresh processes started together, one from this tree and one from
OTHER_TREE (a checkout of another version), so both see the same load on a shared machine; per-epoch
seconds from ``result.history`` (the epochs only; the total also holds the fill after the last epoch).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

import sdk
from sdk.nas.algorithm import SearchSettings, _theta_step
from sdk.nas.api import prepare_space
from sdk.nas.space import PAPER_CANDIDATES
from sdk.nas.supernet import Supernet, build_supernet, init_theta_inside


def qat_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    q = sdk.quantize(model, sdk.MixedPrecisionConfig.uniform(model, 4, 4)).train()
    with torch.no_grad():
        q(x)
    opt = torch.optim.SGD(q.parameters(), lr=0.01, momentum=0.9)

    def step() -> None:
        loss = nn.functional.cross_entropy(q(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def w_step(sn: Supernet, mode: str, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.SGD(sn.weight_params(), lr=0.01, momentum=0.9)

    def step() -> None:
        sn.set_mode(mode, 1)  # type: ignore[arg-type]
        loss = nn.functional.cross_entropy(sn(x, grad_theta=False), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def theta_step(sn: Supernet, mode: str, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    opt = torch.optim.Adam(sn.theta_params(), lr=5e-3)
    s = SearchSettings(b_max=3.0, epochs=1, mode=mode)  # type: ignore[arg-type]

    def step() -> None:
        sn.set_mode(mode, 1)  # type: ignore[arg-type]
        _theta_step(sn, opt, s, x, y, 0.1, 1.0, 0)

    return step


_EPOCH_PROBE = """
import json, time, torch, sdk
torch.set_num_threads(1)
data = sdk.data.digits(seed=0, batch_size=64)
torch.manual_seed(0)
model = sdk.models.digits_cnn(num_classes=10, width=8)
w, a = data.search_split(seed=0)
t0 = time.perf_counter()
r = sdk.search(model, w, a, b_max=3.0, epochs=4, seed=0, progress=False)
total = time.perf_counter() - t0
print(json.dumps({"epochs": [rec.seconds for rec in r.history][1:], "total": total, "bits": r.avg_bits}))
"""


def side_by_side(other: str, rounds: int) -> None:
    """Per-epoch search seconds of this tree vs ``other``, alternating fresh processes."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    trees = {"this": str(Path(__file__).resolve().parents[1]), "other": str(Path(other).resolve())}
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in trees}
    for _ in range(rounds):  # both trees at once, so both see the same machine load (a shared machine)
        procs = {}
        for name, tree in trees.items():
            env = {**os.environ, "PYTHONPATH": tree, "OMP_NUM_THREADS": "1"}
            procs[name] = subprocess.Popen([sys.executable, "-c", _EPOCH_PROBE], cwd=tree, env=env,
                                           stdout=subprocess.PIPE, text=True)  # fmt: skip
        for name, proc in procs.items():
            out, _ = proc.communicate()
            runs[name].append(json.loads(out.strip().splitlines()[-1]))
    print(
        f"digits_cnn w8, 4 search epochs (1 warm-up), batch 64, 1 thread, {rounds} rounds "
        "(trees run together)"
    )
    print(f"{'tree':<6} {'median epoch s':>15} {'median total s':>15} {'avg bits':>9}")
    med = {}
    for name, rs in runs.items():
        ep = statistics.median(e for r in rs for e in r["epochs"])
        med[name] = ep
        print(
            f"{name:<6} {ep:>15.2f} {statistics.median(r['total'] for r in rs):>15.2f} {rs[0]['bits']:>9.3f}"
        )
    print(f"per-epoch ratio this/other: {med['this'] / med['other']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per variant per round")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--against", default=None, help="another checkout: time whole search epochs side by side")
    args = ap.parse_args()
    if args.against:
        side_by_side(args.against, args.rounds)
        return
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = sdk.models.resnet20(num_classes=10)
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 10, (args.batch,))
    space = prepare_space(model, (1, 3, args.size, args.size), PAPER_CANDIDATES, "layer", None)
    sn = build_supernet(model, space).train()
    sn.calibrate(x)
    init_theta_inside(sn, 3.0, 0.1)
    variants: dict[str, Callable[[], None]] = {
        "qat (4,4)": qat_step(model, x, y),
        "full W step": w_step(sn, "full", x, y),
        "naive W step": w_step(sn, "naive", x, y),
        "sampled W step": w_step(sn, "sampled", x, y),
        "full theta step": theta_step(sn, "full", x, y),
        "sampled theta step": theta_step(sn, "sampled", x, y),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for fn in variants.values():  # warm up
        fn()
    for _ in range(args.rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                fn()
            times[name].append((time.perf_counter() - t0) / args.steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["qat (4,4)"]
    print(
        f"ResNet20 {args.size}x{args.size}, batch {args.batch}, {len(PAPER_CANDIDATES)} candidates "
        f"({len({a for _, a in PAPER_CANDIDATES})} activation bit-widths), {args.threads} thread(s), "
        f"median of {args.rounds} rounds x {args.steps} steps"
    )
    print(f"{'step':<22} {'ms':>9} {'x QAT':>7}")
    for name, t in med.items():
        print(f"{name:<22} {1000 * t:>9.1f} {t / base:>7.2f}")
    pair_full = med["full W step"] + med["full theta step"]
    pair_sampled = med["sampled W step"] + med["sampled theta step"]
    print(f"{'full W+theta pair':<22} {1000 * pair_full:>9.1f} {pair_full / base:>7.2f}")
    print(f"{'sampled W+theta pair':<22} {1000 * pair_sampled:>9.1f} {pair_sampled / base:>7.2f}")


if __name__ == "__main__":
    main()
