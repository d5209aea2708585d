"""A supernet edge (Eq. 6): one Conv2d/Linear with candidate (w, a) ops that share its float weights.

Full mode, exact and cheap. Every op is ``op_j(x) = conv(Qa_j(x), Qw_j(W)) + b``. Convolution is linear in
its weights, so the ops with the same activation bits ``a`` collapse into one convolution:

    sum_j p_j op_j(x) = sum_a conv(Qa(x), W_a) + b,    W_a = sum_{j: a_j = a} p_j Qw_j(W)

(``sum_j p_j = 1`` keeps one bias). Equivalently ``W_a = P_a * Wbar_a`` with ``P_a = sum_{j: a_j = a} p_j``
the summed probability of the ops reading the ``a``-bit input and ``Wbar_a`` their probability-weighted mean
weight. So a layer runs one convolution per *distinct activation bit-width* (3 for the paper's 8 candidates)
instead of one per candidate; mixing the (tiny) weight tensors is the only per-candidate work.
``mode="naive"`` runs one convolution per candidate, as Eq. 6 reads; tests check both agree.

Sampled mode (ProxylessNAS-style binary gates, the paper's COCO setting following [2]). The supernet draws
``choice`` per step: one path (weight steps: only that op runs, the others cost nothing) or two paths
``(active, other)`` with gate probabilities ``q = softmax(theta[[active, other]])`` (architecture steps). The
output is ``sum_k (g_k + q_k - sg(q_k)) o_k`` with ``g`` the one-hot gate of the active path and ``sg`` stop
gradient: its value is ``o_active``, and dL/dq_k = <dL/dy, o_k> = dL/dg_k, the binary-gate gradient
dL/dtheta_k = sum_l dL/dg_l q_l (delta_kl - q_k) of ProxylessNAS without REINFORCE. The other path is
evaluated without autograd (its gate is 0, so no gradient would flow through it anyway).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from sdk.config import FLOAT_BITS
from sdk.quant.quantizers import ActQuantizer, WeightQuantizer

__all__ = ["MixedLayer", "Mode"]

Mode = Literal["full", "naive", "sampled"]


class MixedLayer(nn.Module):
    """Wraps the float ``layer`` (kept as a child, so its weight stays shared and reshaping still finds it).

    One weight quantizer per distinct weight bit-width and one activation quantizer per distinct activation
    bit-width; the supernet sets ``probs`` (full/naive) or ``choice``/``gate`` (sampled) before each forward.
    """

    def __init__(self, layer: nn.Conv2d | nn.Linear, candidates: tuple[tuple[int, int], ...]) -> None:
        super().__init__()
        self.layer = layer
        self.candidates = tuple(candidates)
        channels = layer.weight.shape[0]
        self.w_quant = nn.ModuleDict()
        for w in sorted({w for w, _ in candidates}):
            q = WeightQuantizer(w, channels=channels, per_channel=True)
            q.init_from(layer.weight)
            self.w_quant[str(w)] = q
        self.a_quant = nn.ModuleDict({str(a): ActQuantizer(a) for a in sorted({a for _, a in candidates})})
        by_a: dict[int, list[int]] = {}
        for j, (_, a) in enumerate(candidates):
            by_a.setdefault(a, []).append(j)
        self.by_a = tuple((a, tuple(js)) for a, js in by_a.items())
        self.mode: Mode = "full"
        self.probs: torch.Tensor | None = None
        self.choice: tuple[int, ...] = (0,)
        self.gate: torch.Tensor | None = None

    # -- pieces ----------------------------------------------------------------------------------------
    def qweight(self, w_bits: int) -> torch.Tensor:
        if w_bits >= FLOAT_BITS:
            return self.layer.weight
        out: torch.Tensor = self.w_quant[str(w_bits)](self.layer.weight)
        return out

    def qinput(self, x: torch.Tensor, a_bits: int) -> torch.Tensor:
        out: torch.Tensor = self.a_quant[str(a_bits)](x)
        return out

    def linear_op(self, x: torch.Tensor, weight: torch.Tensor, bias: bool) -> torch.Tensor:
        """The layer's own convolution / matmul with a given weight, with or without its bias."""
        b = self.layer.bias if bias else None
        if isinstance(self.layer, nn.Conv2d):
            return self.layer._conv_forward(x, weight, b)
        return F.linear(x, weight, b)

    def op(self, x: torch.Tensor, j: int) -> torch.Tensor:
        """Candidate op j alone: conv(Qa_j(x), Qw_j(W)) + b."""
        w, a = self.candidates[j]
        return self.linear_op(self.qinput(x, a), self.qweight(w), True)

    # -- forward ---------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "sampled":
            return self._sampled(x)
        p = self.probs
        if p is None:
            raise RuntimeError("MixedLayer.probs is unset; run it through its Supernet.")
        if self.mode == "naive":
            return sum((p[j] * self.op(x, j) for j in range(len(self.candidates))), torch.zeros(()))
        qw = {w: self.qweight(w) for w in {w for w, _ in self.candidates}}
        out: torch.Tensor | None = None
        for a, js in self.by_a:
            mixed = sum(
                (p[j] * qw[self.candidates[j][0]] for j in js[1:]), p[js[0]] * qw[self.candidates[js[0]][0]]
            )
            y = self.linear_op(self.qinput(x, a), mixed, out is None)
            out = y if out is None else out + y
        assert out is not None
        return out

    def _sampled(self, x: torch.Tensor) -> torch.Tensor:
        active = self.op(x, self.choice[0])
        if self.gate is None or len(self.choice) == 1:
            return active
        q = self.gate
        with torch.no_grad():
            other = self.op(x, self.choice[1])
        return (1 + q[0] - q[0].detach()) * active + (q[1] - q[1].detach()) * other
