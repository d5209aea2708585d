"""The search losses: expected BOPs E(SN) in average bits (Eq. 4, 10), the barrier penalty (Eq. 12), the
Prob-1 regularizer (Eq. 14), and the DNAS-style linear cost term (Eq. 9) used by the baseline.

E(SN) = sqrt(sum_i sum_j p_ij MAC_i w_j a_j / sum_i MAC_i): Eq. 10 with B(op_ij) = MAC_i w_j a_j, reported in
the units of Eq. 4 so b_max is in bits. It equals the avg_bits of ``sdk.bops`` when every p_i is one-hot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["expected_bits", "barrier", "barrier_value", "prob1", "dnas_cost"]


def expected_bits(probs: Sequence[torch.Tensor], coeffs: torch.Tensor) -> torch.Tensor:
    """E(SN) in bits from per-group probabilities and the (groups, candidates) matrix c_ij = MAC_i w_j a_j /
    sum MAC (zero-padded), in float64 so the budget test at the barrier is exact to ~1e-15."""
    total = coeffs.new_zeros(())
    for i, p in enumerate(probs):
        total = total + (p.to(coeffs.dtype) * coeffs[i, : p.numel()]).sum()
    return torch.sqrt(total)


def barrier(e_bits: torch.Tensor, b_max: float, mu: float) -> torch.Tensor:
    """Eq. 12: -mu * log(log(b_max + 1 - E)); +inf (never NaN) at and beyond the barrier E >= b_max."""
    if not bool(e_bits < b_max):
        return e_bits * 0 + math.inf
    return -mu * torch.log(torch.log(b_max + 1 - e_bits))


def barrier_value(e_bits: float, b_max: float, mu: float) -> float:
    """Eq. 12 on a float (for plots): +inf for E >= b_max."""
    if e_bits >= b_max:
        return math.inf
    return -mu * math.log(math.log(b_max + 1 - e_bits))


def prob1(probs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Eq. 14: sum_i prod_j (1 - p_ij); minimal (0) exactly when every p_i is one-hot (Property 1)."""
    return torch.stack([torch.prod(1 - p) for p in probs]).sum()


def dnas_cost(e_bits: torch.Tensor, lam: float) -> torch.Tensor:
    """The DNAS [22] cost term lambda * E(SN) of Eq. 9: a trade-off weight, no guarantee of the budget."""
    return lam * e_bits
