"""The supernet SN: a copy of the model whose quantizable layers are MixedLayers, plus theta per group.

theta_g (one logit per candidate of group g) gives the importance factors p_g = softmax(theta_g) (Eq. 7);
all layers of a group read the same p_g (or, in sampled mode, the same drawn path).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from sdk.config import FLOAT_BITS
from sdk.models.layers import Add
from sdk.nas.losses import expected_bits
from sdk.nas.mixed import MixedLayer, Mode
from sdk.nas.space import SearchSpace
from sdk.quant.layers import quantizable_layers
from sdk.quant.modules import QuantAdd

__all__ = ["Supernet", "build_supernet", "init_theta_inside"]


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

    def forward(self, x: torch.Tensor, *, grad_theta: bool = True) -> torch.Tensor:
        """Run the model; with ``grad_theta=False`` the importance factors are constants (weight steps)."""
        ctx = torch.enable_grad() if grad_theta else torch.no_grad()
        with ctx:
            probs = self.probs()
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

    @torch.no_grad()
    def calibrate(self, x: torch.Tensor) -> None:
        """Initialise every activation quantizer (signedness, alpha) from one batch, in full mode."""
        mode, paths = self.mode, self.paths
        self.set_mode("full")
        was = self.training
        self.eval()
        try:
            self(x)
        finally:
            self.train(was)
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
    if residual_bits < FLOAT_BITS:
        for name, m in list(net.named_modules()):
            if type(m) is Add:
                parent_name, _, child = name.rpartition(".")
                setattr(
                    net.get_submodule(parent_name) if parent_name else net, child, QuantAdd(residual_bits)
                )
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
def init_theta_inside(
    supernet: Supernet, b_max: float, margin: float, *, spread: float = 0.02, max_spread: float = 0.3
) -> tuple[int, float]:
    """Start strictly inside the budget, with the Eq. 8 argmax on a budget-filling uniform choice.

    Per group, with L the leading candidate (cost w*a), the start is theta = log p with
    ``p = (1 - lam - eps_g) onehot(L) + lam q(cheaper than L) + eps_g uniform(costlier than L)``, q giving
    the next cheaper candidate 3/4 of its mass (weights 1, 1/4, 1/16, ... going down),
    ``eps_g = min(max_spread, spread * mean_share / share_g)`` with share_g the group's fraction of the MACs:
    layers that cost little (stem, classifier) start with much of their mass on costlier candidates, which
    they can afford, big layers with little. E(SN)^2 is linear in lam, so lam is solved exactly for
    E(SN) = b_max - margin. L is the costliest
    candidate with w*a <= b_max^2 for which the solution keeps L the most probable; failing that, the next
    cheaper one, down to the cheapest (where ``spread`` shrinks until E(SN) fits). Returns (L of the first
    group, lam). The search thus starts feasible, near the uniform config that fills the budget, with every
    candidate alive, and Algorithm 1 redistributes bits between layers from there.
    """
    groups = supernet.space.groups
    coeffs = supernet.space.coefficients()
    target = (b_max - margin) ** 2

    total = float(supernet.space.total_macs)
    mean_share = 1.0 / len(groups)

    def mix(lead: int, lam: float, eps0: float) -> list[list[float]]:
        out = []
        for g in groups:
            share = max(g.macs / total, 1e-12)
            eps = min(max_spread, eps0 * mean_share / share)
            costs = [g.cost(j) for j in range(len(g.candidates))]
            lc = sorted(range(len(costs)), key=lambda j: (costs[j], j))[lead]
            below = [j for j in range(len(costs)) if costs[j] < costs[lc]]
            above = [
                j for j in range(len(costs)) if costs[j] > costs[lc] or (costs[j] == costs[lc] and j != lc)
            ]
            p = [0.0] * len(costs)
            p[lc] = 1.0 - (lam if below else 0.0) - (eps if above else 0.0)
            # the next cheaper candidates get most of the mass below L (weights 1, 1/4, 1/16, ... downward):
            # the barrier then moves big layers one step down rather than straight to the cheapest
            ranks = sorted(below, key=lambda j: -costs[j])
            weights = [0.25**r for r in range(len(ranks))]
            for j, wgt in zip(ranks, weights):
                p[j] += lam * wgt / sum(weights)
            for j in above:
                p[j] += eps / len(above)
            out.append(p)
        return out

    def e2(ps: list[list[float]]) -> float:
        return sum(sum(pj * c for pj, c in zip(p, cs)) for p, cs in zip(ps, coeffs))

    def apply(ps: list[list[float]]) -> None:
        for t, p in zip(supernet.theta, ps):
            t.copy_(torch.tensor([math.log(max(v, 1e-12)) for v in p]))

    def top_share(n_below: int) -> float:
        return 1.0 / sum(0.25**r for r in range(n_below))

    n = len(groups[0].candidates)
    order = sorted(range(n), key=lambda j: (groups[0].cost(j), j))
    fits = [
        k for k, j in enumerate(order) if groups[0].candidates[j][0] * groups[0].candidates[j][1] <= b_max**2
    ]
    for lead in sorted(fits, reverse=True):
        if lead == 0:
            break
        n_below = lead
        e_hi, e_lo = e2(mix(lead, 0.0, spread)), e2(mix(lead, 1.0 - spread, spread))
        # at least a little mass below L (only lowers E): every candidate stays alive
        lam = max(0.02, 0.0 if e_hi <= target else (e_hi - target) / (e_hi - e_lo))
        lam_max = (1.0 - max_spread) / (1.0 + top_share(n_below)) * 0.95  # L stays clearly the most probable
        if lam <= lam_max:
            apply(mix(lead, lam, spread))
            return order[lead], lam
    eps = spread
    while e2(mix(0, 0.0, eps)) > target and eps > 1e-9:
        eps *= 0.5
    apply(mix(0, 0.0, eps))
    return order[0], 0.0
