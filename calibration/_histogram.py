"""A fixed-size histogram of |x| whose range grows by powers of two: memory-bounded and rebinned exactly."""

from __future__ import annotations

import math

import torch

__all__ = ["AbsHistogram"]


class AbsHistogram:
    """``bins`` equal-width bins over ``[0, range]`` of |x|, plus an exact count of zeros.

    When a batch exceeds the range, the range doubles as often as needed and adjacent bins merge in pairs, so
    counts are never interpolated; the range stays within 2x of the largest |x| seen. Zeros (ReLU outputs)
    are counted apart so they neither skew the range nor cost quantization error.
    """

    def __init__(self, bins: int = 2048) -> None:
        if bins < 2 or bins & (bins - 1):
            raise ValueError(f"bins must be a power of two >= 2, got {bins}")
        self.bins = bins
        self.counts = torch.zeros(bins, dtype=torch.float64)
        self.range = 0.0
        self.zeros = 0.0

    @property
    def total(self) -> float:
        return float(self.counts.sum()) + self.zeros

    @property
    def width(self) -> float:
        return self.range / self.bins

    def add(self, absx: torch.Tensor) -> None:
        """Count the non-negative values ``absx`` (any shape)."""
        flat = absx.detach().reshape(-1)
        top = float(flat.max()) if flat.numel() else 0.0
        zeros = float((flat == 0).sum())
        self.zeros += zeros
        if top == 0.0:
            return
        if self.range == 0.0:
            self.range = top
        elif top > self.range:
            self._grow(math.ceil(math.log2(top / self.range)))
            while top > self.range:  # float rounding in log2
                self._grow(1)
        counts = torch.histc(flat.float(), self.bins, 0.0, self.range).double().cpu()
        counts[0] -= zeros  # zeros are counted apart
        self.counts += counts

    def _grow(self, doublings: int) -> None:
        factor = 2**doublings
        if factor >= self.bins:
            merged = self.counts.sum().reshape(1)
        else:
            merged = self.counts.reshape(-1, factor).sum(1)
        self.counts = torch.cat([merged, torch.zeros(self.bins - merged.numel(), dtype=torch.float64)])
        self.range *= factor

    def centers(self) -> torch.Tensor:
        return (torch.arange(self.bins, dtype=torch.float64) + 0.5) * self.width

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0..1) of |x|, linear within the bin it falls in; zeros sit at 0."""
        total = self.total
        if total == 0 or self.range == 0.0:
            return 0.0
        target = q * total - self.zeros
        if target <= 0:
            return 0.0
        cdf = torch.cumsum(self.counts, 0)
        i = int(torch.searchsorted(cdf, torch.tensor([target], dtype=torch.float64)).clamp_max(self.bins - 1))
        before = float(cdf[i - 1]) if i > 0 else 0.0
        inside = float(self.counts[i])
        frac = (target - before) / inside if inside > 0 else 1.0
        return (i + min(max(frac, 0.0), 1.0)) * self.width
