"""The supernet SN: a copy of the model whose quantizable layers are MixedLayers, plus theta per group.

theta_g (one logit per candidate of group g) gives the importance factors p_g = softmax(theta_g) (Eq. 7);
all layers of a group read the same p_g (or, in sampled mode, the same drawn path).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from sdk.nas.losses import expected_bits
from sdk.nas.mixed import MixedLayer, Mode
from sdk.nas.space import SearchSpace
from sdk.quant.calibration_mode import calibration_mode
from sdk.quant.convert import quantize_residual_adds
from sdk.quant.layers import quantizable_layers

__all__ = [
    "Supernet",
    "build_supernet",
    "init_theta_inside",
    "init_theta_within",
    "init_theta_lead",
    "within_targets",
    "LEAD_SPREAD",
]

#: start="sensitivity": the share of every group's p kept on the hinge start (every candidate stays reachable)
LEAD_SPREAD = 0.1


class Supernet(nn.Module):
    """``net``: the model with MixedLayers; ``theta``: one parameter vector per group of ``space``."""

    def __init__(
        self, net: nn.Module, space: SearchSpace, layers: Sequence[Sequence[MixedLayer]], seed: int
    ) -> None:
        super().__init__()
        self.net = net
        self.space = space
        self.theta = nn.ParameterList([nn.Parameter(torch.zeros(len(g.candidates))) for g in space.groups])
        self._layers = [list(ls) for ls in layers]
        self.register_buffer("coeffs", _coeff_matrix(space), persistent=False)
        self.mode: Mode = "full"
        self.paths = 1
        self.generator = torch.Generator().manual_seed(seed)

    # -- importance factors ----------------------------------------------------------------------------
    def probs(self) -> list[torch.Tensor]:
        """p_ij (Eq. 7), one tensor per group, differentiable in theta."""
        return [torch.softmax(t, 0) for t in self.theta]

    def expected_bits(self) -> torch.Tensor:
        """E(SN) of Eq. 10 in average bits (Eq. 4), float64, differentiable in theta."""
        coeffs = self.coeffs
        assert isinstance(coeffs, torch.Tensor)
        return expected_bits(self.probs(), coeffs)

    def theta_params(self) -> list[nn.Parameter]:
        return list(self.theta)

    def weight_params(self) -> list[nn.Parameter]:
        ids = {id(t) for t in self.theta}
        return [p for p in self.parameters() if id(p) not in ids]

    def argmax_choice(self) -> list[int]:
        """Eq. 8: the most important candidate of every group (ties: the first listed)."""
        return [int(torch.argmax(t.detach())) for t in self.theta]

    # -- forward ---------------------------------------------------------------------------------------
    def set_mode(self, mode: Mode, paths: int = 1) -> None:
        self.mode, self.paths = mode, paths
        for ls in self._layers:
            for m in ls:
                m.mode = mode

    def set_path(self, choice: Sequence[int]) -> None:
        """Run one fixed path from now on: sampled mode, candidate ``choice[g]`` in every layer of group g
        (call ``self.net`` directly; ``forward`` would draw a new path)."""
        self.set_mode("sampled", 1)
        for ls, j in zip(self._layers, choice):
            for m in ls:
                m.choice, m.gate = (int(j),), None

    def forward(self, x: torch.Tensor, *, grad_theta: bool = True, uniform: bool = False) -> torch.Tensor:
        """Run the model; with ``grad_theta=False`` the importance factors are constants (weight steps).

        ``uniform=True`` (warm-up, sampled mode) draws the paths uniformly instead of from p.
        """
        ctx = torch.enable_grad() if grad_theta else torch.no_grad()
        with ctx:
            probs = self.probs()
        if uniform:
            probs = [torch.full_like(p, 1.0 / p.numel()).detach() for p in probs]
        if self.mode == "sampled":
            self._draw(probs)
        else:
            for ls, p in zip(self._layers, probs):
                for m in ls:
                    m.probs = p
        return self.net(x)  # type: ignore[no-any-return]

    def _draw(self, probs: list[torch.Tensor]) -> None:
        for ls, p, t in zip(self._layers, probs, self.theta):
            k = min(self.paths, len(p))
            choice = tuple(
                int(i) for i in torch.multinomial(p.detach().cpu().float(), k, generator=self.generator)
            )
            gate = torch.softmax(t[list(choice)], 0) if k > 1 else None
            for m in ls:
                m.choice, m.gate = choice, gate

    def calibrate(self, x: torch.Tensor) -> None:
        """Initialise every activation quantizer (signedness, alpha) from one batch, in full mode, under
        :func:`sdk.quant.calibration_mode.calibration_mode` (eval mode; untrained BatchNorm: batch stats)."""
        mode, paths = self.mode, self.paths
        self.set_mode("full")
        try:
            with calibration_mode(self):
                self(x)
        finally:
            self.set_mode(mode, paths)


def _coeff_matrix(space: SearchSpace) -> torch.Tensor:
    coeffs = space.coefficients()
    width = max(len(c) for c in coeffs)
    return torch.tensor([c + [0.0] * (width - len(c)) for c in coeffs], dtype=torch.float64)


def build_supernet(
    model: nn.Module, space: SearchSpace, *, seed: int = 0, residual_bits: int = 8
) -> Supernet:
    """Deep-copy ``model`` and replace each quantizable layer by a MixedLayer with its group's candidates.

    Residual ``Add`` modules become ``QuantAdd(residual_bits)`` as in ``sdk.quantize``, so the supernet trains
    the weights under the same residual quantization the retrained and deployed model will run.
    """
    net = copy.deepcopy(model)
    quantize_residual_adds(net, residual_bits)
    group_of = {layer: gi for gi, g in enumerate(space.groups) for layer in g.layers}
    layers: list[list[MixedLayer]] = [[] for _ in space.groups]
    for name, m in quantizable_layers(net):
        gi = group_of[name]
        mixed = MixedLayer(m, space.groups[gi].candidates)  # type: ignore[arg-type]
        parent_name, _, child = name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        setattr(parent, child, mixed)
        layers[gi].append(mixed)
    return Supernet(net, space, layers, seed)


@torch.no_grad()
def init_theta_inside(supernet: Supernet, b_max: float, margin: float) -> float:
    """Start strictly inside the budget, undecided among the candidates that fit the budget on their own.

    Per group, ``p_j ∝ exp(-beta * s_g * max(0, w_j a_j - b_max**2))`` (a hinge start, ``s_g`` the group's
    share of the MACs): every candidate whose own cost fits the budget (w*a <= b_max**2) gets the same weight;
    dearer ones are tilted down by what they cost the budget, beta by bisection so that E(SN) = b_max - margin
    (beta = 0, the paper's uniform start, when that is already inside). A classifier head or stem with a tiny
    MAC share thus starts near uniform and the val loss can still raise a dear candidate there; unweighted,
    every group's dear candidates started > 10 nats below the lead at b_max = 2.5, more than a short search's
    Adam steps can move (docs/search.md). The Eq. 8 argmax of the start is a tie among the affordable
    candidates. A plain cost tilt (Gibbs, ``p_j ∝ exp(-beta * w_j a_j)``) made the cheapest candidate lead in
    every group, and Prob-1 then sharpened onto it; it remains the fallback when even the affordable
    candidates alone average above the target. Returns beta.
    """
    costs = [
        torch.tensor([float(w * a) for w, a in g.candidates], dtype=torch.float64)
        for g in supernet.space.groups
    ]
    total = float(supernet.space.total_macs)
    share = [g.macs / total for g in supernet.space.groups]
    target = b_max - margin
    hinge = [s * (c - b_max**2).clamp(min=0.0) for s, c in zip(share, costs)]

    def ok() -> bool:
        return float(supernet.expected_bits()) <= target

    beta = _solve_beta(supernet, hinge, ok, beta_max=1e12)
    if beta is None:  # the affordable candidates alone are too dear: tilt every candidate by its cost
        beta = _solve_beta(supernet, [c - c.min() for c in costs], ok, beta_max=1e6)
    assert beta is not None, "the all-cheapest config is inside the target by construction"
    return beta


def _solve_beta(
    supernet: Supernet, tilt: list[torch.Tensor], ok: Callable[[], bool], beta_max: float
) -> float | None:
    """Set theta_ij = -beta * tilt_ij with the smallest beta >= 0 for which ``ok()`` holds (bisection; it is
    monotone in beta for the BOPs budget, and the beta kept is always one tested inside); None (theta left at
    beta_max) when even beta_max is not inside."""

    def set_beta(beta: float) -> bool:
        for t, c in zip(supernet.theta, tilt):
            t.copy_((-beta * c).to(t.dtype))
        return ok()

    if set_beta(0.0):
        return 0.0
    if not set_beta(beta_max):
        return None
    lo, hi = 0.0, 1.0
    while not set_beta(hi):
        lo, hi = hi, 2 * hi
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if not set_beta(mid):
            lo = mid
        else:
            hi = mid
    set_beta(hi)  # the inside end of the bracket
    return hi


def within_targets(
    supernet: Supernet, constraints: Sequence[Any], targets: Sequence[float]
) -> Callable[[], bool]:
    """The test every theta start must pass: each constraint's expected value under the current theta is
    within its start target."""

    def ok() -> bool:
        probs = supernet.probs()
        return all(float(c.expected(probs)) <= t for c, t in zip(constraints, targets))

    return ok


@torch.no_grad()
def init_theta_within(supernet: Supernet, constraints: Sequence[Any], targets: Sequence[float]) -> bool:
    """Put theta inside every constraint's target (``c.expected <= target``), starting from the BOPs start
    (:func:`init_theta_inside`) and changing nothing when that is inside already. Otherwise the same hinge
    start summed over the constraints: candidate j of group g is tilted by its share of the uniform-j config's
    cost times how far that config overshoots the cap, ``sum_c t_cgj / T_cj * max(0, T_cj / cap_c - 1)`` (for
    BOPs alone the hinge above, up to a constant); then a plain cost tilt. False when neither gets inside (the
    caller then returns its feasible floor config)."""

    ok = within_targets(supernet, constraints, targets)
    if ok():
        return True
    tables = [torch.tensor(c.table, dtype=torch.float64) for c in constraints]
    hinge = sum(
        (t / t.sum(0) * (t.sum(0) / c.cap - 1).clamp(min=0.0) for c, t in zip(constraints, tables)),
        torch.zeros_like(tables[0]),
    )
    cost = sum(
        ((t - t.min(1, keepdim=True).values) / c.cap for c, t in zip(constraints, tables)),
        torch.zeros_like(tables[0]),
    )
    for tilt in (hinge, cost):
        if _solve_beta(supernet, list(tilt), ok, beta_max=1e12) is not None:
            return True
    return False


@torch.no_grad()
def init_theta_lead(
    supernet: Supernet,
    lead: Sequence[int],
    floor: Sequence[int],
    ok: Callable[[], bool],
    spread: float = LEAD_SPREAD,
) -> float | None:
    """Make config ``lead`` every group's Eq. 8 argmax at the start (``sdk.search(start="sensitivity")``).

    From the current start p0 (the hinge start, inside every target):
    ``p_g = (1 - eps - spread) onehot(lead_g) + eps onehot(floor_g) + spread p0_g``, theta = log p, with the
    smallest eps in [0, 1 - spread] for which ``ok()`` (every constraint's expected value within its start
    target) holds, by bisection: each expected value is monotone in eps, and the end eps = 1 - spread mixes
    the floor config and p0, both inside. ``lead`` leads while eps < (1 - spread) / 2, by
    log((1 - eps - spread) / eps) nats over the floor; a lead that fits with room gets eps = 0 (a lead of
    log((1 - spread) / spread) nats or more). Returns eps; None (theta left as it was) when even the end is
    outside.
    """
    old = [t.detach().clone() for t in supernet.theta]
    log_p0 = [torch.log_softmax(t.double(), 0) for t in old]

    def set_eps(eps: float) -> bool:
        for t, lp0, k, f in zip(supernet.theta, log_p0, lead, floor):
            p = torch.zeros_like(lp0)
            p[int(k)] += max(0.0, 1.0 - eps - spread)
            p[int(f)] += eps
            terms = torch.stack([p.log(), lp0 + math.log(spread)])  # log of the mixture, finite via p0
            t.copy_(torch.logsumexp(terms, 0).to(t.dtype))
        return ok()

    hi = 1.0 - spread
    if set_eps(0.0):
        return 0.0
    if not set_eps(hi):
        for t, o in zip(supernet.theta, old):
            t.copy_(o)
        return None
    lo = 0.0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if set_eps(mid):
            hi = mid
        else:
            lo = mid
    set_eps(hi)  # the inside end of the bracket
    return hi
