"""Observers: alpha on known distributions, bounded memory, the registry and input checks."""

import math

import pytest
import torch

from calibration import (
    CALIBRATORS,
    EntropyObserver,
    MinMaxObserver,
    MSEObserver,
    Observer,
    PercentileObserver,
    create_observer,
    register_calibrator,
)
from calibration._histogram import AbsHistogram
from sdk import InputError
from sdk.quant import code_range


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _feed(obs: Observer, x: torch.Tensor, chunks: int = 10) -> Observer:
    for c in x.chunk(chunks):
        obs.observe(c)
    return obs


def _uniform(n: int = 400_000) -> torch.Tensor:
    return torch.rand(n, generator=_gen())


def _laplace(n: int = 400_000) -> torch.Tensor:
    u = torch.rand(n, generator=_gen(1)) - 0.5
    return -torch.sign(u) * torch.log1p(-2 * u.abs())  # Laplace(0, 1) by inverse CDF


def _quant_mse(x: torch.Tensor, alpha: float, bits: int, signed: bool) -> float:
    """Direct squared error of the bpnas activation grid on raw samples (reference for the observers)."""
    lo, hi = code_range(bits, signed)
    s = alpha / hi
    return float(((torch.clamp(torch.round(x.double() / s), lo, hi) * s - x.double()) ** 2).mean())


def test_registry_names_and_did_you_mean():
    assert {"minmax", "percentile", "mse", "entropy"} <= set(CALIBRATORS.names())
    assert isinstance(create_observer("mse"), MSEObserver)
    with pytest.raises(InputError, match="percentile"):
        create_observer("percentil")
    with pytest.raises(ValueError, match="already registered"):
        register_calibrator("minmax")(MinMaxObserver)


def test_custom_observer_registers_and_factories_work():
    @register_calibrator("_test_half_max")
    class HalfMax(MinMaxObserver):
        def _alpha(self, bits, signed):
            return self.amax / 2

    try:
        assert _feed(create_observer("_test_half_max"), torch.tensor([1.0, -4.0]), 1).qparams(8, True) == 2.0
    finally:
        CALIBRATORS._items.pop("_test_half_max")
    obs = create_observer(lambda: PercentileObserver(90.0))
    assert isinstance(obs, PercentileObserver) and obs.percentile == 90.0
    with pytest.raises(InputError, match="Observer"):
        create_observer(lambda: 3)
    with pytest.raises(InputError):
        create_observer(42)  # type: ignore[arg-type]


def test_minmax_is_exact_and_tracks_sign():
    obs = MinMaxObserver()
    obs.observe(torch.tensor([[0.5, 2.0], [1.0, 0.0]]))
    assert not obs.has_negative and obs.qparams(8, False) == 2.0
    obs.observe(torch.tensor([-3.25, 1.0]))
    assert obs.has_negative and obs.qparams(4, True) == 3.25 and obs.count == 6


def test_percentile_on_uniform_data():
    x = _uniform()
    assert _feed(PercentileObserver(), x).qparams(8, False) == pytest.approx(0.9999, abs=1e-3)
    assert _feed(PercentileObserver(90.0), x).qparams(8, False) == pytest.approx(0.9, abs=2e-3)
    assert _feed(PercentileObserver(50.0), x * 2 - 1).qparams(8, True) == pytest.approx(0.5, abs=2e-3)


def test_percentile_counts_zeros_and_never_exceeds_max():
    x = torch.cat([torch.zeros(900), torch.linspace(0.01, 1.0, 100)])  # 90% zeros (ReLU-like)
    assert _feed(PercentileObserver(50.0), x).qparams(8, False) == 0.0
    assert _feed(PercentileObserver(95.0), x).qparams(8, False) == pytest.approx(0.5, abs=0.02)
    assert _feed(PercentileObserver(100.0), x).qparams(8, False) <= 1.0


def test_mse_clips_heavy_tails_and_keeps_uniform_range():
    lap = _feed(MSEObserver(), _laplace())
    amax = lap.amax
    a4, a8 = lap.qparams(4, True), lap.qparams(8, True)
    assert a4 < 0.5 * amax and a4 < a8 < amax
    assert a8 == pytest.approx(9.9, rel=0.1)  # ACIQ's MSE-optimal 8-bit clip for Laplace(0, 1)
    uni = _feed(MSEObserver(), _uniform())
    assert uni.qparams(8, False) > 0.98 * uni.amax


def test_mse_choice_beats_max_and_neighbours_on_raw_samples():
    x = _laplace(100_000)
    obs = _feed(MSEObserver(), x)
    for bits in (3, 4, 6):
        alpha = obs.qparams(bits, True)
        best = _quant_mse(x, alpha, bits, True)
        for other in (obs.amax, 0.8 * alpha, 1.25 * alpha):
            assert best <= _quant_mse(x, other, bits, True) * 1.01
        # the histogram's error estimate tracks the direct error
        est = float(obs.error(torch.tensor([alpha]), bits, True)[0]) / x.numel()
        assert est == pytest.approx(best, rel=0.05)


def test_entropy_on_known_distributions():
    uni = _feed(EntropyObserver(), _uniform())
    assert uni.qparams(8, False) > 0.95 * uni.amax  # nothing worth clipping
    lap = _feed(EntropyObserver(), _laplace())
    a8 = lap.qparams(8, True)
    assert 4.0 < a8 < 0.9 * lap.amax  # clips the rare tail, keeps the bulk
    relu = _feed(EntropyObserver(), torch.relu(_laplace()))  # half exact zeros: must not dominate
    assert relu.qparams(8, False) > 3.0


@pytest.mark.parametrize("name", ["minmax", "percentile", "mse", "entropy"])
def test_every_observer_alpha_in_range(name):
    x = _laplace(50_000) * 3
    obs = _feed(create_observer(name), x)
    for bits in (2, 4, 8):
        alpha = obs.qparams(bits, True)
        assert 0 < alpha <= obs.amax and math.isfinite(alpha)


def test_histogram_is_bounded_and_rebins_exactly():
    hist = AbsHistogram(bins=256)
    data = [torch.rand(10_000, generator=_gen(i)) * 2.0**i for i in range(8)]  # the range keeps growing
    for d in data:
        hist.add(d)
        assert hist.counts.numel() == 256
    everything = torch.cat(data)
    assert hist.total == everything.numel()
    assert everything.max() <= hist.range < 2 * everything.max()
    direct = torch.histc(everything, 256, 0.0, hist.range).double()
    assert float((hist.counts - direct).abs().sum()) <= 1e-3 * everything.numel()
    assert hist.quantile(0.5) == pytest.approx(float(everything.median()), rel=0.02)


def test_histogram_counts_zeros_apart():
    hist = AbsHistogram(bins=64)
    hist.add(torch.zeros(10))
    hist.add(torch.tensor([0.0, 1.0, 2.0]))
    assert hist.zeros == 11 and hist.total == 13 and float(hist.counts.sum()) == 2


def test_observer_input_checks():
    with pytest.raises(InputError, match="no data"):
        MinMaxObserver().qparams(8, False)
    with pytest.raises(InputError, match="NaN"):
        MinMaxObserver().observe(torch.tensor([1.0, float("nan")]))
    with pytest.raises(InputError, match="inf"):
        PercentileObserver().observe(torch.tensor([float("inf")]))
    obs = _feed(MinMaxObserver(), torch.ones(4), 1)
    with pytest.raises(InputError, match="bits"):
        obs.qparams(1, False)
    with pytest.raises(InputError, match="percentile"):
        PercentileObserver(0.0)
    zero = _feed(MSEObserver(), torch.zeros(100), 2)
    assert zero.qparams(8, False) == 0.0 and not zero.has_negative
