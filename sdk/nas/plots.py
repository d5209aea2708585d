"""The paper's figures as PNGs (matplotlib, the ``plots`` extra, imported only here and only when called).

Fig. 2: the barrier penalty -mu log(log(b_max + 1 - E)) for several mu, and the hard constraint (Eq. 11-12).
Fig. 3: retrained accuracy vs average bits of many searches, one marker per b_max.
Fig. 4: importance factors p_ij of one group over the epochs, with and without Prob-1.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdk.errors import InputError
from sdk.nas.history import SearchHistory
from sdk.nas.losses import barrier_value

if TYPE_CHECKING:
    from sdk.nas.result import SearchResult

__all__ = ["barrier_curves", "accuracy_vs_bits", "importance_evolution"]


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise InputError("plots need matplotlib: pip install 'bpnas[plots]'.") from e
    return plt


def barrier_curves(
    path: str | os.PathLike[str], *, b_max: float = 4.0, mus: Sequence[float] = (0.5, 0.2, 0.05)
) -> Path:
    """Fig. 2: L*_c(E) for each mu and the ideal L_c (0 inside, infinite outside), E in [0, b_max + 1]."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    es = [b_max * i / 400 for i in range(400)] + [b_max - 10.0**-k for k in range(3, 9)]
    es.sort()
    for mu in mus:
        ax.plot(es, [barrier_value(e, b_max, mu) for e in es], label=f"L*c, mu={mu:g}")
    ax.plot([0, b_max, b_max], [0, 0, 10], color="tab:blue", lw=2.5, alpha=0.35, label="Lc (hard)")
    ax.set(xlim=(0, b_max + 1), ylim=(-0.5, 3), xlabel="E(SN) [avg bits]", ylabel="penalty")
    ax.axvline(b_max, color="gray", ls=":", lw=1)
    ax.set_title(f"Barrier penalty, Bmax = {b_max:g}")
    ax.legend(fontsize=8)
    return _save(fig, plt, path)


def accuracy_vs_bits(
    results: Sequence[SearchResult], accuracies: Sequence[float], path: str | os.PathLike[str]
) -> Path:
    """Fig. 3: one point per search (avg bits, accuracy in %), colored by b_max; dashed b_max lines."""
    if len(results) != len(accuracies) or not results:
        raise InputError(
            "accuracy_vs_bits needs one retrained accuracy per search result (and at least one)."
        )
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    markers = "os^Dv<>p"
    for k, b in enumerate(sorted({r.b_max for r in results})):
        pts = [(r.avg_bits, 100 * a) for r, a in zip(results, accuracies) if r.b_max == b]
        ax.scatter(*zip(*pts), marker=markers[k % len(markers)], label=f"Bmax={b:g}", alpha=0.8)
        ax.axvline(b, ls="--", lw=0.8, color=f"C{k}")
    ax.set(xlabel="average bits (Eq. 4)", ylabel="top-1 accuracy [%]", title="Search results")
    ax.legend(fontsize=8)
    return _save(fig, plt, path)


def importance_evolution(
    history: SearchHistory,
    path: str | os.PathLike[str],
    *,
    group: str | None = None,
    without: SearchHistory | None = None,
) -> Path:
    """Fig. 4: p_ij over epochs of ``group`` (default: the first group with several candidates); with
    ``without`` a second panel shows the same group of a search without Prob-1."""
    plt = _pyplot()
    panels = [("with Prob-1", history)] + ([("without Prob-1", without)] if without is not None else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    name = group or next(
        (g for g, c in history.candidates.items() if len(c) > 1), next(iter(history.candidates))
    )
    for ax, (title, h) in zip(axes[0], panels):
        rows = h.probs(name)
        epochs = [r.epoch for r in h.records]
        for j, pair in enumerate(h.candidates[name]):
            ax.plot(epochs, [row[j] for row in rows], label=f"({pair[0]},{pair[1]})")
        ax.set(xlabel="epoch", ylabel="importance factor p", ylim=(0, 1), title=f"{name}: {title}")
        ax.legend(fontsize=7, ncol=2)
    return _save(fig, plt, path)


def _save(fig: Any, plt: Any, path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
