"""The served predictive distribution on data whose truth is known (a simulated GARCH(1,1))."""

from __future__ import annotations

import numpy as np
import pytest

from bundle.distribution import LEVELS, PredictiveDistribution, calibrate, ewma_sigma

WINDOW = 60


def garch_prices(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Closes and the true sigma of each day's return: omega, alpha, beta = 2e-6, 0.08, 0.9,
    Student-t(6) innovations scaled to unit variance (fat tails, like daily stock returns)."""
    rng = np.random.default_rng(seed)
    omega, alpha, beta, nu = 2e-6, 0.08, 0.9, 6.0
    z = rng.standard_t(nu, n) / np.sqrt(nu / (nu - 2))
    var = np.empty(n)
    r = np.empty(n)
    var[0] = omega / (1 - alpha - beta)
    for t in range(n):
        if t:
            var[t] = omega + alpha * r[t - 1] ** 2 + beta * var[t - 1]
        r[t] = np.sqrt(var[t]) * z[t]
    return 50.0 * np.exp(np.concatenate([[0.0], np.cumsum(r)])), np.sqrt(var)


def windows(closes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = np.lib.stride_tricks.sliding_window_view(closes, WINDOW + 1)
    return pairs[:, :WINDOW], pairs[:, WINDOW]


@pytest.fixture(scope="module")
def simulated():
    closes, sigma = garch_prices(6000)
    x, y = windows(closes)
    true_sigma = sigma[WINDOW - 1 :]  # sigma of the return into y (return index = close index - 1)
    cal, test = slice(0, 1000), slice(1000, None)
    naive = x[:, -1]  # the true conditional mean of the log return is 0
    dist = calibrate(np.log(y[cal] / naive[cal]), ewma_sigma(x[cal]), sigma_floor=1e-5)
    return dist, x[test], y[test], true_sigma[test]


def test_coverage_on_a_garch_series_is_nominal_within_tolerance(simulated):
    """5,000 test sessions: the binomial standard error is 0.6 pp at 80%, 0.3 pp at 95%; the
    calibration set (1,000 sessions) adds about as much. Tolerance: 2.5 pp and 1.5 pp."""
    dist, x, y, _ = simulated
    sigma = dist.sigma(x)
    for c, tol in ((0.8, 0.025), (0.95, 0.015)):
        lo, hi = dist.bounds(x[:, -1:], sigma, c)
        covered = np.mean((y >= lo[:, 0]) & (y <= hi[:, 0]))
        assert abs(covered - c) <= tol, (c, covered)


def test_interval_is_narrower_in_calm_and_wider_in_turbulent_stretches(simulated):
    dist, x, y, true_sigma = simulated
    lo, hi = dist.bounds(x[:, -1:], dist.sigma(x), 0.8)
    width = (hi - lo)[:, 0] / x[:, -1]
    calm = true_sigma <= np.quantile(true_sigma, 0.2)
    turbulent = true_sigma >= np.quantile(true_sigma, 0.8)
    assert width[turbulent].mean() > 1.5 * width[calm].mean()
    # ... and it tracks the truth: relative width correlates with the true sigma.
    assert np.corrcoef(width, true_sigma)[0, 1] > 0.7
    # Coverage holds in both regimes (the static interval over-covers calm, under-covers turbulent).
    for part in (calm, turbulent):
        covered = np.mean((y[part] >= lo[part, 0]) & (y[part] <= hi[part, 0]))
        assert 0.74 <= covered <= 0.86


def test_quantiles_are_monotone_finite_and_match_the_intervals(simulated):
    dist, x, _, _ = simulated
    point, sigma = x[:5, -1:], dist.sigma(x[:5])
    levels = [1e-9, 1e-4, 0.001, 0.01, 0.025, 0.1, 0.3, 0.5, 0.7, 0.9, 0.975, 0.99, 0.999, 1 - 1e-9]
    q = np.stack([dist.quantile(point, sigma, lv)[:, 0] for lv in levels])
    assert np.all(np.isfinite(q)) and np.all(np.diff(q, axis=0) > 0)
    np.testing.assert_allclose(q[levels.index(0.5)], point[:, 0])
    for c in (0.8, 0.95):
        lo, hi = dist.bounds(point, sigma, c)
        np.testing.assert_array_equal(lo, dist.quantile(point, sigma, (1 - c) / 2))
        np.testing.assert_array_equal(hi, dist.quantile(point, sigma, (1 + c) / 2))
    with pytest.raises(ValueError, match="outside"):
        dist.quantile(point, sigma, 1.0)


def test_finite_sample_level_and_grid():
    scores = np.arange(1, 251, dtype=np.float64)  # |z| = 1..250, sigma 1
    dist = calibrate(scores, np.ones(250), sigma_floor=1e-3)
    # ceil(251 * 0.8) = 201 -> the 201st smallest score.
    assert dist.score_quantiles[LEVELS.index(0.8)] == 201.0
    assert dist.score_quantiles[LEVELS.index(0.95)] == 239.0
    assert 0.8 in dist.levels and 0.95 in dist.levels


def test_ewma_sigma_of_a_constant_window_is_floored_and_of_iid_returns_is_close():
    flat = np.full((1, WINDOW), 10.0)
    assert ewma_sigma(flat)[0] == 0.0
    dist = PredictiveDistribution(sigma_floor=1e-4, levels=(0.5, 0.9), score_quantiles=(0.7, 1.6),
                                  tail_slope=0.4, calibration_sessions=100)  # fmt: skip
    assert dist.sigma(flat)[0] == 1e-4
    rng = np.random.default_rng(1)
    closes = np.exp(np.cumsum(rng.normal(0, 0.02, (2000, WINDOW)), axis=1))
    assert np.median(ewma_sigma(closes)) == pytest.approx(0.02, rel=0.1)


def test_invalid_distributions_are_refused():
    with pytest.raises(ValueError, match="non-decreasing"):
        PredictiveDistribution(sigma_floor=1e-4, levels=(0.5, 0.9), score_quantiles=(1.0, 0.5),
                               tail_slope=0.4, calibration_sessions=10)  # fmt: skip
    with pytest.raises(ValueError, match="increasing"):
        PredictiveDistribution(sigma_floor=1e-4, levels=(0.9, 0.5), score_quantiles=(0.5, 1.0),
                               tail_slope=0.4, calibration_sessions=10)  # fmt: skip
