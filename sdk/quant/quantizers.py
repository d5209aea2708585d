"""Eq. 1 quantizers: symmetric weights with learnable clip alpha, Clip-ReLU (PACT) activations.

The float forward of these modules is the specification every exporter and runtime reproduces:
``code = clamp(round(x / s), lo, hi)`` with ``s = |alpha| / n`` computed in float32, round half to even
(torch.round, ONNX QuantizeLinear), and the dequantized value ``code * s``. Bits are plain attributes so a
search can change them in place; 32 bits means float pass-through.
"""

from __future__ import annotations

import torch
from torch import nn

from sdk.config import FLOAT_BITS

__all__ = ["fake_quant", "code_range", "WeightQuantizer", "ActQuantizer", "EPS"]

EPS = 1e-8
_SIGN_UNKNOWN, _UNSIGNED, _SIGNED = -1, 0, 1


def code_range(bits: int, signed: bool) -> tuple[int, int]:
    """Integer code range: narrow symmetric ``±(2^(b-1)-1)`` when signed, ``[0, 2^b-1]`` when unsigned."""
    if signed:
        n = 2 ** (bits - 1) - 1
        return -n, n
    return 0, 2**bits - 1


def fake_quant(x: torch.Tensor, scale: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """Quantize-dequantize with a straight-through round; gradients reach ``x`` and ``scale`` (LSQ/PACT)."""
    y = torch.clamp(x / scale, lo, hi)
    y = y + (torch.round(y) - y).detach()
    return y * scale


class WeightQuantizer(nn.Module):
    """Symmetric narrow-range weight quantizer, per-tensor or per-output-channel (axis 0)."""

    def __init__(self, bits: int, *, channels: int = 1, per_channel: bool = True) -> None:
        super().__init__()
        self.bits = int(bits)
        self.per_channel = bool(per_channel)
        self.alpha = nn.Parameter(torch.ones(channels if per_channel else 1))

    @torch.no_grad()
    def init_from(self, w: torch.Tensor) -> None:
        """Set alpha to max|w| (per output channel when per_channel)."""
        a = w.detach().abs().flatten(1).amax(1) if self.per_channel else w.detach().abs().max().reshape(1)
        self.alpha.copy_(a.clamp_min(EPS))

    @property
    def levels(self) -> int:
        return 2 ** (self.bits - 1) - 1

    def scale(self, ndim: int = 1) -> torch.Tensor:
        """Per-channel (C,) or per-tensor (1,) scale, reshaped to broadcast over a weight of rank ``ndim``."""
        s = self.alpha.abs().clamp_min(EPS) / self.levels
        return s.reshape(-1, *([1] * (ndim - 1))) if ndim > 1 else s

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if self.bits >= FLOAT_BITS:
            return w
        lo, hi = code_range(self.bits, signed=True)
        return fake_quant(w, self.scale(w.dim()), lo, hi)

    @torch.no_grad()
    def codes(self, w: torch.Tensor) -> torch.Tensor:
        """The integer codes (int32) the quantized weight takes; exporters store these."""
        lo, hi = code_range(self.bits, signed=True)
        return torch.clamp(torch.round(w / self.scale(w.dim())), lo, hi).to(torch.int32)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, per_channel={self.per_channel}"


class ActQuantizer(nn.Module):
    """Activation quantizer: unsigned Clip-ReLU ``[0, alpha]`` with ``2^a-1`` levels, or signed narrow range.

    Signedness and the initial alpha come from the first batch it sees unless given: a tensor with negative
    values (the network input, a residual branch) gets the signed variant. ``unsigned_bits`` caps the code
    width of the unsigned variant for engines whose containers hold fewer unsigned codes (TensorRT's
    symmetric int8 holds 0..127, so an 8-bit unsigned activation there has 7-bit codes; ``sdk.quantize(...,
    target=)`` sets it from the target). All three are saved in the state dict.
    """

    sign_mode: torch.Tensor
    initialized: torch.Tensor
    unsigned_bits: torch.Tensor

    def __init__(
        self, bits: int, *, signed: bool | None = None, init_quantile: float = 0.999, unsigned_bits: int = 8
    ) -> None:
        super().__init__()
        self.bits = int(bits)
        self.init_quantile = float(init_quantile)
        self.alpha = nn.Parameter(torch.ones(()))
        sign = _SIGN_UNKNOWN if signed is None else (_SIGNED if signed else _UNSIGNED)
        self.register_buffer("sign_mode", torch.tensor(sign, dtype=torch.int8))
        self.register_buffer("initialized", torch.tensor(False))
        self.register_buffer(
            "unsigned_bits", torch.tensor(_check_unsigned_bits(unsigned_bits), dtype=torch.int8)
        )

    @property
    def signed(self) -> bool:
        return int(self.sign_mode) == _SIGNED

    @signed.setter
    def signed(self, value: bool) -> None:
        self.sign_mode.fill_(_SIGNED if value else _UNSIGNED)

    @property
    def range(self) -> tuple[int, int]:
        if self.signed:
            return code_range(self.bits, True)
        return code_range(min(self.bits, int(self.unsigned_bits)), False)

    def set_unsigned_bits(self, bits: int) -> None:
        """Cap the unsigned variant's codes at ``bits`` (2..8); call before the quantizer sees data."""
        self.unsigned_bits.fill_(_check_unsigned_bits(bits))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object, **kwargs: object) -> None:
        # state dicts written before the cap existed hold 8-bit unsigned codes
        state_dict.setdefault(prefix + "unsigned_bits", torch.tensor(8, dtype=torch.int8))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)  # type: ignore[arg-type]

    def scale(self) -> torch.Tensor:
        return self.alpha.abs().clamp_min(EPS) / self.range[1]

    @torch.no_grad()
    def init_from(self, x: torch.Tensor) -> None:
        """Decide signedness (if unknown) and alpha from a batch: the ``init_quantile`` of |x|."""
        if int(self.sign_mode) == _SIGN_UNKNOWN:
            self.signed = bool((x < 0).any())
        flat = x.detach().abs().flatten().float()
        if flat.numel() > 1_000_000:
            idx = torch.randint(0, flat.numel(), (1_000_000,), generator=torch.Generator().manual_seed(0))
            flat = flat[idx]
        a = torch.quantile(flat, self.init_quantile) if flat.numel() > 1 else flat.max()
        self.alpha.copy_(a.clamp_min(1e-3))
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits >= FLOAT_BITS:
            return x
        if not bool(self.initialized):
            self.init_from(x)
        lo, hi = self.range
        return fake_quant(x, self.scale(), lo, hi)

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self.range
        return torch.clamp(torch.round(x / self.scale()), lo, hi).to(torch.int32)

    def extra_repr(self) -> str:
        sign = {_SIGN_UNKNOWN: "auto", _UNSIGNED: "unsigned", _SIGNED: "signed"}[int(self.sign_mode)]
        cap = int(self.unsigned_bits)
        return f"bits={self.bits}, {sign}" + (f", unsigned_bits={cap}" if cap < 8 else "")


def _check_unsigned_bits(bits: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 8:
        raise ValueError(f"unsigned_bits must be an int in 2..8, got {bits!r}")
    return bits
