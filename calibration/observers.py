"""Activation observers: statistics of one tensor stream, turned into the clip value alpha for a bit width.

Two methods, as torch.ao's ObserverBase: ``observe(x)`` for every batch, ``qparams(bits, signed) -> alpha``.
Observers work on |x| because every bpnas activation grid is symmetric or starts at zero (DESIGN §2): the
quantizer's scale is ``alpha / n`` with ``n = 2^(b-1)-1`` (signed) or ``2^b-1`` (unsigned). Histogram-based
observers keep a fixed number of bins, so memory does not grow with the calibration set.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch

from calibration._histogram import AbsHistogram
from sdk._registry import Registry
from sdk.config import VALID_BITS
from sdk.errors import InputError
from sdk.quant.quantizers import code_range

__all__ = [
    "Observer",
    "ObserverFactory",
    "CALIBRATORS",
    "register_calibrator",
    "create_observer",
    "MinMaxObserver",
    "PercentileObserver",
    "MSEObserver",
    "EntropyObserver",
]


class Observer(ABC):
    """Base observer: tracks count, min and max exactly; subclasses add their statistic and the alpha rule."""

    def __init__(self) -> None:
        self.count = 0
        self.min = math.inf
        self.max = -math.inf

    @property
    def has_negative(self) -> bool:
        """Whether any observed value was negative: the quantizer must then be signed."""
        return self.min < 0

    @property
    def amax(self) -> float:
        """The largest |x| observed (0.0 before any data)."""
        return max(abs(self.min), abs(self.max)) if self.count else 0.0

    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> None:
        """Record one batch of values (any shape); NaN/inf raise InputError."""
        x = x.detach()
        if x.numel() == 0:
            return
        x = x.float()
        lo, hi = torch.aminmax(x)
        lo_f, hi_f = float(lo), float(hi)
        if not (math.isfinite(lo_f) and math.isfinite(hi_f)):
            raise InputError("observed NaN or inf values; check the inputs and the float model for overflow.")
        self.min, self.max = min(self.min, lo_f), max(self.max, hi_f)
        self.count += x.numel()
        self._observe(x.abs())

    def qparams(self, bits: int, signed: bool) -> float:
        """The clip value alpha for a ``bits``-bit quantizer (signed narrow or unsigned grid)."""
        if isinstance(bits, bool) or bits not in VALID_BITS:
            raise InputError(f"bits must be one of {sorted(VALID_BITS)}, got {bits!r}.")
        if self.count == 0:
            raise InputError(
                f"{type(self).__name__} has observed no data; feed it batches with observe(x) first."
            )
        if self.amax == 0.0:
            return 0.0
        return float(min(self._alpha(bits, bool(signed)), self.amax))

    def _observe(self, absx: torch.Tensor) -> None:  # noqa: B027 - optional hook, min/max need nothing more
        """Update the subclass statistic from |x| (float32)."""

    @abstractmethod
    def _alpha(self, bits: int, signed: bool) -> float:
        """Alpha for ``bits``; called only after non-zero data was observed."""


ObserverFactory = Callable[[], Observer]
_O = TypeVar("_O", bound=type[Observer])

CALIBRATORS: Registry[ObserverFactory] = Registry("calibration method")


def register_calibrator(name: str) -> Callable[[_O], _O]:
    """Class decorator: register an Observer subclass (constructible without arguments) under ``name``."""

    def wrap(cls: _O) -> _O:
        CALIBRATORS.register(name, cls)
        return cls

    return wrap


def create_observer(method: str | ObserverFactory) -> Observer:
    """A fresh observer from a registered name (``"percentile"``) or a factory.

    A factory is any zero-argument callable returning an Observer, e.g. ``lambda: PercentileObserver(99.9)``.
    """
    factory = CALIBRATORS.get(method) if isinstance(method, str) else method
    if not callable(factory):
        raise InputError(
            f"calibration method must be a name ({', '.join(CALIBRATORS.names())}) or an Observer factory, "
            f"got {type(method).__name__}."
        )
    obs = factory()
    if not isinstance(obs, Observer):
        raise InputError(f"calibration factory returned {type(obs).__name__}, not a calibration.Observer.")
    return obs


@register_calibrator("minmax")
class MinMaxObserver(Observer):
    """alpha = max|x|: nothing clipped, coarsest steps."""

    def _alpha(self, bits: int, signed: bool) -> float:
        return self.amax


class _HistogramObserver(Observer):
    """Shared by the histogram-based observers: a bounded ``AbsHistogram`` of |x|."""

    def __init__(self, *, bins: int = 2048) -> None:
        super().__init__()
        self.hist = AbsHistogram(bins)

    def _observe(self, absx: torch.Tensor) -> None:
        self.hist.add(absx)


@register_calibrator("percentile")
class PercentileObserver(_HistogramObserver):
    """alpha = the ``percentile`` of |x| (default 99.99): clips the rarest outliers, independent of bits."""

    def __init__(self, percentile: float = 99.99, *, bins: int = 2048) -> None:
        if not 0.0 < percentile <= 100.0:
            raise InputError(f"percentile must be in (0, 100], got {percentile!r}; 99.99 is typical.")
        super().__init__(bins=bins)
        self.percentile = float(percentile)

    def _alpha(self, bits: int, signed: bool) -> float:
        return self.hist.quantile(self.percentile / 100.0)


@register_calibrator("mse")
class MSEObserver(_HistogramObserver):
    """alpha minimising the mean squared quantization error of the observed values (clip + rounding).

    Grid search over ``candidates`` clips in (0, max|x|], then a second, finer grid around the best; the error
    of each histogram bin is averaged over ``samples_per_bin`` points spread inside it. Zeros cost nothing.
    """

    def __init__(self, *, candidates: int = 100, samples_per_bin: int = 4, bins: int = 2048) -> None:
        if candidates < 2 or samples_per_bin < 1:
            raise InputError("MSEObserver needs candidates >= 2 and samples_per_bin >= 1.")
        super().__init__(bins=bins)
        self.candidates = candidates
        self.samples_per_bin = samples_per_bin

    def _points(self) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.samples_per_bin
        offsets = (torch.arange(k, dtype=torch.float64) + 0.5) / k
        pts = (torch.arange(self.hist.bins, dtype=torch.float64)[:, None] + offsets) * self.hist.width
        weights = (self.hist.counts / k)[:, None].expand_as(pts)
        keep = weights > 0
        return pts[keep], weights[keep]

    def error(self, alphas: torch.Tensor, bits: int, signed: bool) -> torch.Tensor:
        """Expected squared error (summed over the observed values) for each clip in ``alphas``."""
        pts, weights = (t.float()[None, :] for t in self._points())
        n = code_range(bits, signed)[1]
        s = (alphas.float() / n)[:, None]
        err = pts / s  # in place from here: (candidates x points) is the only large temporary
        err.round_().clamp_(0, n).mul_(s).sub_(pts).square_().mul_(weights)
        return err.sum(1, dtype=torch.float64)

    def _alpha(self, bits: int, signed: bool) -> float:
        top = self.amax
        grid = torch.linspace(top / self.candidates, top, self.candidates, dtype=torch.float64)
        best = float(grid[int(torch.argmin(self.error(grid, bits, signed)))])
        step = top / self.candidates
        fine = torch.linspace(
            max(best - step, step / self.candidates), min(best + step, top), self.candidates
        )
        return float(fine[int(torch.argmin(self.error(fine.double(), bits, signed)))])


@register_calibrator("entropy")
class EntropyObserver(_HistogramObserver):
    """TensorRT-style KL calibration: the clip whose ``n``-level quantized histogram diverges least from it.

    For each candidate threshold (a bin edge), the reference distribution is the histogram up to it with the
    clipped tail added to its last bin; the candidate is the same bins (tail excluded) merged into ``n``
    levels (``n`` = the positive code count of the a-bit grid) and spread back over the non-empty bins. Zeros
    (ReLU outputs) are left out, as pytorch-quantization flattens its zero bin: the spike would otherwise
    dominate the divergence. Thresholds start at bin ``start_bin`` (or ``n`` if larger); at most
    ``max_candidates`` are tried, evenly spaced.
    """

    def __init__(self, *, bins: int = 2048, start_bin: int = 128, max_candidates: int = 512) -> None:
        if not 1 <= start_bin <= bins or max_candidates < 1:
            raise InputError(
                f"EntropyObserver needs 1 <= start_bin <= bins ({bins}) and max_candidates >= 1."
            )
        super().__init__(bins=bins)
        self.start_bin = start_bin
        self.max_candidates = max_candidates

    def _alpha(self, bits: int, signed: bool) -> float:
        n = code_range(bits, signed)[1]
        hist = self.hist.counts.numpy()
        used = int(np.flatnonzero(hist).max()) + 1
        start = max(n, self.start_bin)
        if used <= start:
            return self.amax  # too few occupied bins to be worth clipping
        hist = hist[:used]
        cands = np.unique(
            np.linspace(start, used, min(self.max_candidates, used - start + 1)).round().astype(int)
        )
        kls = [_kl_clip(hist, int(i), n) for i in cands]
        return float(cands[int(np.argmin(kls))]) * self.hist.width


def _kl_clip(hist: np.ndarray, i: int, n: int, eps: float = 1e-4) -> float:
    """KL(P || Q) for clipping ``hist`` at bin ``i`` into ``n`` levels (see EntropyObserver)."""
    sliced = hist[:i]
    p = sliced.copy()
    p[-1] += hist[i:].sum()
    edges = np.floor(np.linspace(0, i, n + 1)).astype(int)
    nonzero = sliced != 0
    sums = np.add.reduceat(sliced, edges[:-1])
    counts = np.add.reduceat(nonzero.astype(np.float64), edges[:-1])
    per_bin = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    q = np.repeat(per_bin, np.diff(edges)) * nonzero
    q = np.where(q > 0, q, eps)  # smoothing: a clipped tail in an empty last bin is costly, not infinite
    mask = p > 0
    p_n = p[mask] / p.sum()
    q_n = q[mask] / q.sum()
    return float(np.sum(p_n * np.log(p_n / q_n)))
