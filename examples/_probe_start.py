"""Why does the search keep the uniform lead at b_max = 2.5? One search per variant, p of three groups.

    PYTHONPATH=. .venv/bin/python examples/_probe_start.py mobilenet old_start 2.5 4
    (variants: old_start = the unweighted hinge start, new_start; suffix _noprob1 / _noargmaxguard)

Noisy digits at 32x32 (2 copies), the float model trained 8 epochs (lr 0.05) and cached in runs/probe/.
Figures quoted in docs/search.md ("Starting inside the barrier's domain").
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

import sdk
import sdk.nas.algorithm as alg
import sdk.nas.supernet as sup
from examples._study_tasks import ARCHS, noisy_digits
from sdk.data import split_loader
from sdk.training import train

torch.set_num_threads(1)
arch, variant, b_max, epochs = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
task = noisy_digits()
torch.manual_seed(0)
model = ARCHS[arch]()
cache = Path(f"runs/probe/float_{arch}.pt")
if cache.exists():
    model.load_state_dict(torch.load(cache, weights_only=True))
else:
    cache.parent.mkdir(parents=True, exist_ok=True)
    train(model, task.train, task.val, epochs=8, lr=0.05, progress=False)
    torch.save(model.state_dict(), cache)
if variant == "old_start":  # the unweighted hinge of the previous code
    orig = sup._solve_beta

    def unweighted(sn, tilt, target, beta_max):  # type: ignore[no-untyped-def]
        if beta_max == 1e12:
            costs = [
                torch.tensor([float(w * a) for w, a in g.candidates], dtype=torch.float64)
                for g in sn.space.groups
            ]
            tilt = [(c - b_max**2).clamp(min=0.0) for c in costs]
        return orig(sn, tilt, target, beta_max)

    sup._solve_beta = unweighted
kw = {"fill": False}
if variant.endswith("noprob1"):
    kw["prob1_weight"] = 0.0
if variant.endswith("noargmaxguard"):
    alg._argmax_inside = lambda sn, b: True  # type: ignore[assignment]
w, a = split_loader(task.train, 0.6, seed=0)
t0 = time.time()
r = sdk.search(model, w, a, b_max=b_max, epochs=epochs, seed=0, progress=False, **kw)
names = list(r.probs)
h = r.history
print(
    f"{arch} {variant} b={b_max} e={epochs}: {time.time() - t0:.0f}s avg_bits {r.avg_bits:.3f} "
    f"backtracks {[rec.backtracks for rec in h]} E {[round(rec.expected_bits, 3) for rec in h]}"
)
cands = [f"{w}{a}" for w, a in sdk.nas.PAPER_CANDIDATES]
for n in (names[0], names[-1], names[len(names) // 2]):
    print(f"  {n}: start p {dict(zip(cands, [round(v, 4) for v in h[0].probs[n]]))}")
    print(f"  {n}:   end p {dict(zip(cands, [round(v, 4) for v in h[-1].probs[n]]))}")
print("  config", " ".join(f"{w}{a}" for w, a in (r.config[k] for k in r.config)))
