"""SearchResult: the searched config, its certificate (every constraint recounted), the repair record and
the history."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sdk.config import MixedPrecisionConfig
from sdk.nas.certificate import Certificate, Certified
from sdk.nas.fill import FillMove
from sdk.nas.history import SearchHistory
from sdk.nas.sampling import RepairMove

__all__ = ["SearchResult"]


@dataclass(frozen=True)
class SearchResult(Certified):
    """What a search returns.

    ``config`` is the final config; ``certificate`` its ``sdk.bops`` report recounted on the model plus one
    check per active constraint (``certificate.checks``: avg_bits and each ``budget`` key, each with its
    limit, recounted value and ``inside``; ``sdk.nas.certificate``). Every check holds for every
    ``sdk.search`` result; DNAS baselines may be outside, see ``within``. ``budget`` and ``target`` are the
    extra limits and the target (name) that priced them. ``repaired`` says whether the Eq. 8 argmax config
    (``pre_repair_config``, at ``pre_repair_avg_bits``) exceeded b_max and was lowered by ``repair_moves``.
    ``fill_moves`` then raised groups to dearer candidates until none fits (``sdk.nas.fill``: the config is
    maximal under every constraint), in the order of their measured validation-loss drop per BOP.
    ``start`` is how theta started ("hinge", or "sensitivity": led by ``start_config``, the
    measured-sensitivity knapsack, measured in ``start_seconds``, part of the search's cost).
    """

    config: MixedPrecisionConfig
    certificate: Certificate
    b_max: float
    repaired: bool
    pre_repair_config: MixedPrecisionConfig
    pre_repair_avg_bits: float
    repair_moves: tuple[RepairMove, ...]
    fill_moves: tuple[FillMove, ...]
    history: SearchHistory
    theta: Mapping[str, tuple[float, ...]]
    groups: Mapping[str, tuple[str, ...]]
    seed: int
    method: str = "bp-nas"
    budget: Mapping[str, float] = field(default_factory=dict)
    target: str | None = None
    start: str = "hinge"
    start_config: MixedPrecisionConfig | None = None
    start_seconds: float = 0.0

    @property
    def probs(self) -> Mapping[str, tuple[float, ...]]:
        """Final importance factors p_ij per group."""
        return self.history[-1].probs

    def summary(self) -> str:
        rep = f"repaired from {self.pre_repair_avg_bits:.3f}" if self.repaired else "no repair"
        rep += f", {len(self.fill_moves)} fill moves" if self.fill_moves else ""
        rep += f", sensitivity start {self.start_seconds:.1f} s" if self.start_config is not None else ""
        extra = "".join(
            f", {c.name} {c.value:,.4g} <= {c.limit:,.4g}"
            for c in self.certificate.checks
            if c.name in self.budget
        )
        return (
            f"{self.method}: avg bits {self.avg_bits:.3f} (b_max {self.b_max:g}, {rep}){extra}, "
            f"B-Comp {self.certificate.b_comp:.1f}x, {len(self.config)} layers"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "b_max": self.b_max,
            "budget": dict(self.budget),
            "target": self.target,
            "seed": self.seed,
            "start": self.start,
            "start_config": None if self.start_config is None else self.start_config.to_dict(),
            "start_seconds": self.start_seconds,
            "config": self.config.to_dict(),
            "certificate": self.certificate.to_dict(),
            "within": self.within,
            "repaired": self.repaired,
            "pre_repair_config": self.pre_repair_config.to_dict(),
            "pre_repair_avg_bits": self.pre_repair_avg_bits,
            "repair_moves": [
                {
                    "group": m.group,
                    "before": list(m.before),
                    "after": list(m.after),
                    "log_p_lost": m.log_p_lost,
                    "bops_saved": m.bops_saved,
                }
                for m in self.repair_moves
            ],
            "fill_moves": [
                {
                    "group": m.group,
                    "before": list(m.before),
                    "after": list(m.after),
                    "loss_drop": m.loss_drop,
                    "bops_added": m.bops_added,
                }
                for m in self.fill_moves
            ],
            "theta": {k: list(v) for k, v in self.theta.items()},
            "groups": {k: list(v) for k, v in self.groups.items()},
            "history": self.history.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SearchResult:
        """Rebuild a result written by ``to_dict``/``to_json`` (certificate read back, not recounted)."""
        moves = tuple(
            RepairMove(
                m["group"],
                tuple(m["before"]),
                tuple(m["after"]),
                float(m.get("log_p_lost", 0.0)),
                int(m["bops_saved"]),
            )  # fmt: skip
            for m in d["repair_moves"]
        )
        return cls(
            config=MixedPrecisionConfig.from_dict(d["config"]),
            certificate=Certificate.from_dict(d["certificate"]),
            b_max=float(d["b_max"]),
            repaired=bool(d["repaired"]),
            pre_repair_config=MixedPrecisionConfig.from_dict(d["pre_repair_config"]),
            pre_repair_avg_bits=float(d["pre_repair_avg_bits"]),
            repair_moves=moves,  # type: ignore[arg-type]
            fill_moves=tuple(
                FillMove(
                    m["group"],
                    tuple(m["before"]),
                    tuple(m["after"]),
                    float(m["loss_drop"]),
                    int(m["bops_added"]),
                )  # type: ignore[arg-type]  # fmt: skip
                for m in d.get("fill_moves", ())
            ),
            history=SearchHistory.from_dict(d["history"]),
            theta={k: tuple(float(x) for x in v) for k, v in d["theta"].items()},
            groups={k: tuple(v) for k, v in d["groups"].items()},
            seed=int(d["seed"]),
            method=str(d.get("method", "bp-nas")),
            budget={str(k): float(v) for k, v in d.get("budget", {}).items()},
            target=d.get("target"),
            start=str(d.get("start", "hinge")),
            start_config=MixedPrecisionConfig.from_dict(d["start_config"]) if d.get("start_config") else None,
            start_seconds=float(d.get("start_seconds", 0.0)),
        )

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> SearchResult:
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def to_json(self, path: str | os.PathLike[str]) -> None:
        tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=1)
        os.replace(tmp, path)

    def plot(
        self,
        out_dir: str | os.PathLike[str],
        *,
        results: Sequence[SearchResult] = (),
        accuracies: Sequence[float] = (),
        without_prob1: SearchResult | None = None,
    ) -> list[Path]:
        """Write the paper's figures as PNGs into ``out_dir`` (needs the ``plots`` extra, matplotlib):
        fig2_barrier.png (barrier curves, b_max=4, several mu), fig4_importance.png (this search's p_ij of
        its first searched group, next to ``without_prob1``'s when given) and, with ``results`` and their
        retrained ``accuracies``, fig3_accuracy_vs_bits.png."""
        from sdk.nas import plots

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = [plots.barrier_curves(out / "fig2_barrier.png")]
        if results:
            paths.append(plots.accuracy_vs_bits(results, accuracies, out / "fig3_accuracy_vs_bits.png"))
        other = without_prob1.history if without_prob1 is not None else None
        paths.append(plots.importance_evolution(self.history, out / "fig4_importance.png", without=other))
        return paths
