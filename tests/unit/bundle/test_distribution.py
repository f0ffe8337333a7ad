"""The served predictive distribution on data whose truth is known (a simulated GARCH(1,1)), and on
hand-sized grids whose every number can be written down."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from bundle.distribution import (
    LEVELS,
    SIGMA_CAP,
    PredictiveDistribution,
    calibrate,
    conformal_quantile,
    ewma_sigma,
)

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


def small(levels=(0.5, 0.9), score_quantiles=(1.0, 2.0), tail_slope=0.5, sigma_floor=1e-4, **kw):
    """A hand-sized distribution: |z| 1.0 at 50% and 2.0 at 90%, tail +0.5 per e-fold of 1 / (1 - c)."""
    return PredictiveDistribution(sigma_floor=sigma_floor, levels=levels, score_quantiles=score_quantiles,
                                  tail_slope=tail_slope, calibration_sessions=10, **kw)  # fmt: skip


def test_conformal_quantile_takes_the_exact_rank_when_n_plus_one_times_c_is_whole():
    """(9 + 1) * 0.5 = 5 exactly: the 5th smallest, not the 6th; (99 + 1) * 0.55 is
    55.00000000000001 in floating point and still means the 55th."""
    assert conformal_quantile(np.arange(1.0, 10.0), 0.5) == 5.0
    assert conformal_quantile(np.arange(1.0, 100.0), 0.55) == 55.0
    assert conformal_quantile(np.arange(1.0, 10.0), 0.99) == 9.0  # ceil(9.9) = 10 > n: the largest


def test_halfwidth_interpolates_inside_the_grid_and_extends_the_tail_exponentially():
    dist = small()
    assert float(dist.halfwidth(0.0)) == 0.0
    assert float(dist.halfwidth(0.25)) == pytest.approx(0.5)  # from (0, 0) to (0.5, 1.0)
    assert float(dist.halfwidth(0.7)) == pytest.approx(1.5)  # between the last two levels: linear
    assert float(dist.halfwidth(0.9)) == 2.0  # the last level: no tail yet
    # Beyond 0.9: 2.0 + 0.5 * log((1 - 0.9) / (1 - c)).
    assert float(dist.halfwidth(0.99)) == pytest.approx(2.0 + 0.5 * math.log(10.0))
    assert float(dist.halfwidth(0.999)) == pytest.approx(2.0 + 0.5 * math.log(100.0))


def test_quantile_is_point_times_exp_of_the_signed_halfwidth_times_sigma_and_widen():
    dist = small()
    point, sigma = np.array([[100.0, 110.0]]), np.array([0.02])
    widen = np.sqrt([1.0, 2.0])
    hi = dist.quantile(point, sigma, 0.95, widen)  # central coverage 0.9 -> |z| = 2.0
    np.testing.assert_allclose(hi, point * np.exp(2.0 * 0.02 * widen), rtol=1e-12)
    lo = dist.quantile(point, sigma, 0.05, widen)
    np.testing.assert_allclose(lo, point * np.exp(-2.0 * 0.02 * widen), rtol=1e-12)
    np.testing.assert_allclose(dist.quantile(point, sigma, 0.5), point)
    for outside in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="outside"):
            dist.quantile(point, sigma, outside)


def test_sigma_is_capped_at_half_a_log_unit_unless_the_floor_is_higher():
    wild = np.where(np.arange(WINDOW) % 2, 100.0, 1.0)[None, :]  # |log return| = 4.6 every day
    assert ewma_sigma(wild)[0] == pytest.approx(math.log(100.0))
    assert small().sigma(wild)[0] == SIGMA_CAP == 0.5
    assert small(sigma_floor=0.8).sigma(wild)[0] == 0.8


def test_tail_slope_goes_through_the_90_and_99_percent_quantiles():
    """Scores 1..250: the 90% quantile is the ceil(225.9) = 226th, the 99% one the ceil(248.49) =
    249th, so the slope is (249 - 226) / log(0.1 / 0.01)."""
    dist = calibrate(np.arange(1.0, 251.0), np.ones(250), sigma_floor=1e-3)
    assert dist.score_quantiles[LEVELS.index(0.9)] == 226.0 and dist.score_quantiles[-1] == 249.0
    assert dist.tail_slope == pytest.approx(23.0 / math.log(10.0), rel=1e-12)
    assert dist.levels == LEVELS and dist.calibration_sessions == 250


def test_a_flat_tail_is_kept_positive():
    dist = calibrate(np.full(50, 0.3), np.ones(50), sigma_floor=1e-3)
    assert dist.score_quantiles == (0.3,) * len(LEVELS)
    assert dist.tail_slope == 1e-3


def test_the_distribution_is_immutable():
    dist = small()
    with pytest.raises(ValidationError, match="frozen"):
        dist.tail_slope = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"levels": (0.5,), "score_quantiles": (1.0,)}, "same length"),
        ({"levels": (0.5, 0.9), "score_quantiles": (1.0,)}, "same length"),
        ({"levels": (0.5, 0.5, 0.9), "score_quantiles": (1.0, 1.0, 2.0)}, "increasing"),
        ({"levels": (0.0, 0.5), "score_quantiles": (0.0, 1.0)}, "increasing"),
        ({"levels": (0.3, 0.5, 1.0), "score_quantiles": (0.5, 1.0, 2.0)}, "increasing"),
        ({"levels": (0.5, 1.5), "score_quantiles": (1.0, 2.0)}, "increasing"),
        ({"score_quantiles": (-0.1, 2.0)}, "non-decreasing"),
        ({"score_quantiles": (1.0, float("inf"))}, "finite"),
        ({"ewma_lambda": 1.0}, "less than 1"),
        ({"ewma_lambda": 0.0}, "greater than 0"),
        ({"tail_slope": 0.0}, "greater than 0"),
    ],
)
def test_invalid_grids_and_parameters_are_refused(fields, message):
    with pytest.raises(ValidationError, match=message):
        small(**fields)


def test_ties_and_a_zero_first_quantile_are_valid():
    """Discrete scores tie, and zero residuals give |z| = 0: both are legitimate calibrations."""
    assert small(score_quantiles=(1.5, 1.5)).score_quantiles == (1.5, 1.5)
    assert small(score_quantiles=(0.0, 2.0)).score_quantiles == (0.0, 2.0)


def test_cached_quantiles_are_the_uncached_maths_bit_for_bit_and_never_shared_across_bundles():
    """The per-request interval maths is cached per distribution and quantile (bundle.distribution
    `_signed_halfwidth`): the same bits as computing it afresh, and each distribution its own."""
    point, sigma, widen = np.array([[100.0], [50.0]]), np.array([0.01, 0.03]), np.array([1.0])
    one, other = small(), small(score_quantiles=(1.5, 3.0))
    for dist in (one, other, one):
        for q in (0.025, 0.1, 0.9, 0.975, 0.999):
            z = float(dist.halfwidth(abs(2.0 * q - 1.0))) * math.copysign(1.0, q - 0.5)
            fresh = point * np.exp(z * (sigma[:, None] * widen))
            assert np.array_equal(dist.quantile(point, sigma, q, widen), fresh)
        lower, upper = dist.bounds(point, sigma, 0.8, widen)
        assert np.array_equal(lower, dist.quantile(point, sigma, 0.1, widen))
        assert np.array_equal(upper, dist.quantile(point, sigma, 0.9, widen))
    assert not np.array_equal(one.quantile(point, sigma, 0.9), other.quantile(point, sigma, 0.9))


@pytest.mark.parametrize("window", [3, 60, 3])  # the weights are cached per window length
def test_ewma_sigma_is_the_recursion_it_writes_in_closed_form(window):
    closes = 100 * np.exp(np.cumsum(np.random.default_rng(window).normal(0, 0.01, (2, window)), axis=1))
    r = np.diff(np.log(closes), axis=1)
    s2 = (r**2).mean(axis=1)
    for t in range(r.shape[1]):
        s2 = 0.94 * s2 + 0.06 * r[:, t] ** 2
    np.testing.assert_allclose(ewma_sigma(closes), np.sqrt(s2), rtol=1e-12)


def test_ewma_sigma_of_float32_closes_is_that_of_their_float64_values():
    steps = np.random.default_rng(3).normal(0.0, 0.02, (3, 60))
    closes32 = (30.0 * np.exp(np.cumsum(steps, axis=1))).astype(np.float32)
    np.testing.assert_array_equal(ewma_sigma(closes32), ewma_sigma(closes32.astype(np.float64)))
