"""The certificate of a searched config: every active constraint recounted from the user's model, not from
the search's own tables. Average bits by ``sdk.bops``; weight memory from the quantized model's weight tensors
(``sdk.quantize``: element count x the bits the target stores); cycles by the target's cost model on the
``sdk.bops`` report at the pairs the target computes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from sdk.config import MixedPrecisionConfig
from sdk.cost import BopsReport, LayerCost

__all__ = ["Check", "Certificate", "Certified", "certify", "recount"]


@dataclass(frozen=True)
class Check:
    """One constraint recounted: ``value`` (in ``unit``) against ``limit``; ``basis`` says how it was
    counted (which target's storage or cost model)."""

    name: str
    limit: float
    value: float
    inside: bool
    unit: str
    basis: str = ""


@dataclass(frozen=True)
class Certificate(BopsReport):
    """The ``sdk.bops`` report of the config (every BopsReport field and method) plus one :class:`Check`
    per active constraint (``avg_bits`` always first)."""

    checks: tuple[Check, ...] = ()

    @property
    def inside(self) -> bool:
        return all(c.inside for c in self.checks)

    def __getitem__(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no constraint {name!r} in this certificate; it has {[c.name for c in self.checks]}")

    def summary(self) -> str:
        """One line per constraint: name, value, limit, inside."""
        return "\n".join(
            f"{c.name:<10} {c.value:>14,.4f} {c.unit:<6} <= {c.limit:>14,.4f}  "
            f"{'inside' if c.inside else 'OUTSIDE'}  {c.basis}"
            for c in self.checks
        )

    def table(self) -> str:
        return f"{super().table()}\n{self.summary()}" if self.checks else super().table()

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "constraints": [asdict(c) for c in self.checks]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Certificate:
        layers = tuple(LayerCost(**row) for row in data["layers"])
        return cls(layers, tuple(Check(**c) for c in data.get("constraints", ())))


class Certified:
    """``avg_bits`` and ``within`` of a result that holds a ``certificate`` and its ``b_max``."""

    certificate: BopsReport
    b_max: float

    @property
    def avg_bits(self) -> float:
        return self.certificate.avg_bits

    @property
    def within(self) -> bool:
        """Inside b_max and every other constraint the certificate recounted."""
        checks = getattr(self.certificate, "checks", ())
        return self.certificate.within(self.b_max) and all(c.inside for c in checks)


def _weight_kb(model: nn.Module, config: MixedPrecisionConfig, priced: Any) -> float:
    from sdk.nas.constraints import stored_weight_bits
    from sdk.quant import quantize
    from sdk.quant.convert import quant_layers

    total = 0
    for _, m in quant_layers(quantize(model, config)):
        w, a = m.bits
        total += -(-m.weight.numel() * stored_weight_bits(priced, w, a) // 8)
    return total / 1024


def recount(
    model: nn.Module,
    config: MixedPrecisionConfig,
    input_shape: Any,
    b_max: float,
    budget: Mapping[str, float] | None = None,
    target: Any = None,
) -> Certificate:
    """Count every constraint of ``config`` on ``model`` afresh (see the module docstring)."""
    from sdk.counting import bops
    from sdk.nas.budget import pricing_target

    report = bops(model, config, input_shape=input_shape)
    checks = [Check("avg_bits", float(b_max), report.avg_bits, report.within(b_max), "bits", "sdk.bops")]
    budget = dict(budget or {})
    priced = pricing_target(target) if budget else None
    where = f"target {priced.name!r}" if priced is not None else "no target: the searched bits"
    if "weight_kb" in budget:
        kb, limit = _weight_kb(model, config, priced), budget["weight_kb"]
        checks.append(Check("weight_kb", limit, kb, kb * 1024 <= limit * 1024, "KB", f"stored by {where}"))
    if "cycles" in budget:
        assert priced is not None, "a cycles budget without a target is refused before the search"
        cycles = priced.cost.cycles(priced.deployed_report(report))
        limit = budget["cycles"]
        basis = f"{where} cost model"
        checks.append(Check("cycles", limit, float(cycles), cycles <= limit, "cycles", basis))
    return Certificate(report.layers, tuple(checks))


def certify(
    model: nn.Module,
    config: MixedPrecisionConfig,
    input_shape: Any,
    b_max: float,
    budget: Mapping[str, float] | None = None,
    target: Any = None,
) -> Certificate:
    """:func:`recount`, asserting every constraint holds (the guarantee; a failure is a bug in bpnas)."""
    cert = recount(model, config, input_shape, b_max, budget, target)
    outside = [c for c in cert.checks if not c.inside]
    if outside:
        c = outside[0]
        raise RuntimeError(
            f"internal error: certified config has {c.name}={c.value:.6f} {c.unit} > limit {c.limit}; "
            "please report this bug."
        )
    return cert
