"""QAT-friendly BN folding: the conv trains on folded, quantized weights while BN statistics keep updating.

The standard simulated fold of Jacob et al. (2018) and ``torch.ao.nn.intrinsic.qat.ConvBn2d``: weights are
scaled by ``g / sqrt(running_var + eps)`` before the weight quantizer, and in training the conv output is
rescaled by ``sigma_running / sigma_batch`` with the batch statistics (which also update the running ones) of
the *float* conv's output: torch.ao's numerically stable "slow" path (Krishnamoorthi 2018). It never divides
by ``g/sigma`` (the fast path's failure at ``g -> 0``), and the statistics never come from the quantized
output, which at 2-bit weights let a channel's running_var collapse and the fold diverge. With BN frozen
(``bn.eval()``) it trains on the plain fold. In eval mode the module computes exactly the folded form that
``freeze()`` returns as a plain ``QuantConv2d``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from calibration._fold_math import rescale_weight_alpha_
from sdk.config import FLOAT_BITS
from sdk.quant.modules import QuantConv2d, conv_like
from sdk.quant.quantizers import fake_quant

__all__ = ["FoldedConvBN", "conv_like"]


_INT32 = (-(2**31) + 1, 2**31 - 1)


class FoldedConvBN(QuantConv2d):
    """A ``QuantConv2d`` that owns its following BatchNorm (``self.bn``) and quantizes the folded weight.

    Subclassing QuantConv2d keeps the layer name, ``bits``/``set_bits`` and BOPs counting unchanged, so a
    MixedPrecisionConfig still applies. ``weight_quant.alpha`` is the clip of the *folded* weight, and
    ``quantized_weight``/``quantized_bias`` return the folded tensors. Freeze (``fold_bn(model)``) to export.
    """

    bn: nn.BatchNorm2d

    @classmethod
    def from_pair(cls, conv: QuantConv2d, bn: nn.BatchNorm2d) -> FoldedConvBN:
        """Wrap ``conv`` and the ``bn`` consuming its output (both copied; the originals are untouched)."""
        if conv.out_quant is not None:
            raise ValueError("a conv with an output quantizer cannot absorb the BatchNorm that follows it")
        f = conv_like(conv, cls, bias=conv.bias is not None)
        assert isinstance(f, FoldedConvBN)
        with torch.no_grad():
            f.weight.copy_(conv.weight)
            if conv.bias is not None:
                f.bias.copy_(conv.bias)  # type: ignore[union-attr]
        f.weight_quant = copy.deepcopy(conv.weight_quant)
        f.act_quant = copy.deepcopy(conv.act_quant)
        f.out_quant = None
        f.bn = copy.deepcopy(bn)
        with torch.no_grad():
            scale = f.bn_scale()
            rescale_weight_alpha_(f.weight_quant, scale, f.weight * scale.reshape(-1, 1, 1, 1))
        f.train(conv.training)
        return f

    def bn_scale(self) -> torch.Tensor:
        """``g / sqrt(running_var + eps)`` per output channel, from the BN's running statistics."""
        var = self.bn.running_var
        assert var is not None
        std = torch.sqrt(var + self.bn.eps)
        return self.bn.weight / std if self.bn.weight is not None else 1.0 / std

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The folded float ``(W', b')`` under the current running statistics."""
        scale = self.bn_scale()
        mu = self.bn.running_mean
        assert mu is not None
        bias = self.bias if self.bias is not None else torch.zeros_like(mu)
        beta = self.bn.bias if self.bn.bias is not None else torch.zeros_like(mu)
        return self.weight * scale.reshape(-1, 1, 1, 1), (bias - mu) * scale + beta

    def quantized_weight(self) -> torch.Tensor:
        """The quantized folded weight, as the eval forward and ``freeze()`` use it."""
        return self.weight_quant(self.folded()[0])

    def quantized_bias(self) -> torch.Tensor | None:
        """The folded bias on the accumulator grid (``QuantConv2d.quantized_bias`` applied to ``b'``)."""
        bias = self.folded()[1]
        if self.weight_quant.bits >= FLOAT_BITS or self.act_quant.bits >= FLOAT_BITS:
            return bias
        return fake_quant(bias, self.act_quant.scale() * self.weight_quant.scale(), *_INT32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)  # conv(Qa(x), quantized_weight()) + quantized_bias(): the plain fold
        x = self.act_quant(x)
        if not self.bn.training:  # BN statistics frozen: the plain fold, bias not yet on the integer grid
            w_fold, b_fold = self.folded()
            return self._conv_forward(x, self.weight_quant(w_fold), None) + b_fold.reshape(1, -1, 1, 1)
        # Batch statistics come from the float conv (Krishnamoorthi 2018, Jacob et al. 2018, torch.ao's
        # ConvBn2d slow path), never from the quantized output divided by g/sigma: that division blows up
        # as a gamma nears 0, and statistics of the quantized output feed back into sigma, the fold and the
        # clip (a channel whose low-bit codes go to 0 drives its running_var, and with it 1/scale, to 0).
        y_float = self._conv_forward(x, self.weight, None)
        with torch.no_grad():  # update the running statistics (momentum, num_batches_tracked) as BN does
            bias = self.bias.reshape(1, -1, 1, 1) if self.bias is not None else 0.0
            self.bn(y_float + bias)
        mean = y_float.mean((0, 2, 3))
        std = torch.sqrt(y_float.var((0, 2, 3), unbiased=False) + self.bn.eps)
        var = self.bn.running_var
        assert var is not None
        # conv(x, Q(W g/sigma)) * sigma/sigma_B, sigma from the statistics just updated: W g/sigma_B
        # quantized as it will be deployed, normalised by the batch as the float BN would be
        y = self._conv_forward(x, self.weight_quant(self.folded()[0]), None)
        y = y * (torch.sqrt(var + self.bn.eps) / std).reshape(1, -1, 1, 1)
        gamma = self.bn.weight if self.bn.weight is not None else torch.ones_like(mean)
        beta = self.bn.bias if self.bn.bias is not None else torch.zeros_like(mean)
        out = y + (beta - gamma * mean / std).reshape(1, -1, 1, 1)
        return out + (0.0 * self.bias.sum() if self.bias is not None else 0.0)  # keep the bias in the graph

    @torch.no_grad()
    def freeze(self) -> QuantConv2d:
        """The plain folded ``QuantConv2d`` (BN statistics frozen); equal to this module in eval mode."""
        w, b = self.folded()
        q = conv_like(self, QuantConv2d, bias=True)
        assert isinstance(q, QuantConv2d)
        q.weight.copy_(w)
        q.bias.copy_(b)  # type: ignore[union-attr]
        q.weight_quant = copy.deepcopy(self.weight_quant)
        q.act_quant = copy.deepcopy(self.act_quant)
        q.out_quant = None
        q.train(self.training)
        return q
