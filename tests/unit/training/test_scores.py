"""Proper scores computed by hand on a few numbers, and the validation-time calibration choices."""

from __future__ import annotations

import numpy as np
import pytest

from bundle.distribution import ewma_sigma
from bundle.outputs import outputs
from training.calibration import (
    FLOOR_SHARE,
    choose_point_weight,
    point_weight,
    predictive_distribution,
    sigma_floor,
)
from training.scores import (
    SERVED_QUANTILES,
    coverage,
    interval_scores,
    pinball,
    symmetric_quantiles,
    winkler,
)
from training.settings import TrainSettings

Y = np.array([10.0, 12.0, 7.0, 10.0])  # inside, above by 1, below by 2, on the lower edge
LO = np.array([9.0, 9.0, 9.0, 10.0])
HI = np.array([11.0, 11.0, 11.0, 11.0])


def test_coverage_counts_the_edges_as_inside():
    assert coverage(Y, LO, HI) == 0.5  # 10 in [9, 11] and 10 on the edge of [10, 11]


def test_winkler_is_width_plus_two_over_alpha_times_the_miss():
    widths = np.array([2.0, 2.0, 2.0, 1.0])
    misses = np.array([0.0, 1.0, 2.0, 0.0])
    assert winkler(Y, LO, HI, 0.8) == pytest.approx(np.mean(widths + 2 / 0.2 * misses))  # 9.25
    assert winkler(Y, LO, HI, 0.8) == pytest.approx(9.25)
    assert winkler(Y, LO, HI, 0.95) == pytest.approx(np.mean(widths + 2 / 0.05 * misses))


def test_pinball_is_the_mean_quantile_loss_over_levels():
    y = np.array([10.0, 10.0])
    # q = 0.1, forecast 9 and 11: losses 0.1 * 1 and 0.9 * 1 -> mean 0.5
    # q = 0.5, forecast 10 and 12: losses 0 and 0.5 * 2 -> mean 0.5
    assert pinball(y, {0.1: np.array([9.0, 11.0]), 0.5: np.array([10.0, 12.0])}) == pytest.approx(0.5)
    assert pinball(y, {0.9: np.array([9.0, 9.0])}) == pytest.approx(0.9)


def test_interval_scores_are_flat_metrics_per_level_with_a_prefix():
    out = interval_scores(Y, {0.95: (LO - 1, HI + 1), 0.8: (LO, HI)}, {0.5: (LO + HI) / 2}, prefix="s_")
    assert list(out) == ["s_coverage_80", "s_width_80", "s_winkler_80", "s_coverage_95", "s_width_95",
                         "s_winkler_95", "s_pinball"]  # fmt: skip
    assert out["s_width_80"] == pytest.approx(1.75) and out["s_width_95"] == pytest.approx(3.75)
    assert out["s_coverage_95"] == 0.75 and out["s_winkler_80"] == pytest.approx(9.25)


def test_symmetric_quantiles_are_point_times_exp_of_plus_minus_the_halfwidth():
    point = np.array([100.0])
    q = symmetric_quantiles(point, lambda c: np.full(1, 0.1 if c == pytest.approx(0.8) else 0.2),
                            levels=(0.1, 0.5, 0.9, 0.975))  # fmt: skip
    assert q[0.5] == pytest.approx([100.0])
    assert q[0.1] == pytest.approx([100 * np.exp(-0.1)]) and q[0.9] == pytest.approx([100 * np.exp(0.1)])
    assert q[0.975] == pytest.approx([100 * np.exp(0.2)])


def test_the_median_is_the_point_even_where_the_halfwidth_is_undefined_at_zero_coverage():
    """A log-based tail can be infinite at coverage 0; the 0.5 quantile is the point regardless."""

    def halfwidth_of(c):
        return np.full(2, np.inf if c == 0 else 0.1)

    point = np.array([20.0, 40.0])
    q = symmetric_quantiles(point, halfwidth_of, levels=(0.1, 0.5, 0.9))
    np.testing.assert_array_equal(q[0.5], point)
    np.testing.assert_allclose(q[0.1], point * np.exp(-0.1))
    np.testing.assert_allclose(q[0.9], point * np.exp(0.1))


def test_pinball_is_averaged_over_the_quantiles_the_api_serves_by_default():
    """The default served quantiles are 0.5 and both ends of each trained interval (the declared
    outputs); SERVED_QUANTILES, the default levels of the pinball, must be exactly those."""
    coverages = TrainSettings.model_fields["coverages"].default
    assert tuple(sorted(round(o.quantile, 6) for o in outputs(coverages))) == SERVED_QUANTILES
    assert list(symmetric_quantiles(np.array([1.0]), lambda c: np.full(1, 0.1))) == list(SERVED_QUANTILES)


def test_sigma_floor_is_five_percent_of_the_training_returns_spread():
    """Log returns alternating +0.1 and -0.1: standard deviation 0.1, floor 0.005."""
    closes = np.exp(np.where(np.arange(11) % 2, 0.1, 0.0))
    assert sigma_floor(closes) == pytest.approx(0.005, rel=1e-9)


def test_sigma_floor_is_a_share_of_the_training_returns_spread_never_zero():
    closes = 50 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.02, 400)))
    expected = FLOOR_SHARE * np.std(np.diff(np.log(closes)))
    assert sigma_floor(closes) == pytest.approx(expected)
    windows = np.lib.stride_tricks.sliding_window_view(closes, 5)  # [n, window]: the last column
    assert sigma_floor(windows) == pytest.approx(FLOOR_SHARE * np.std(np.diff(np.log(windows[:, -1]))))
    assert sigma_floor(np.full(10, 3.0)) == 1e-6


def test_the_weight_prefers_naive_on_a_tie():
    last = np.array([10.0, 10.0])
    assert point_weight(np.array([10.0, 10.0]), last, last * 1.01) == 0.0  # the network only adds error
    chosen = choose_point_weight(last * 1.01, last, last * 1.01)  # right, but 2 sessions prove nothing
    assert (chosen.best, chosen.weight) == (1.0, 0.0)
    three = np.array([10.0, 10.0, 10.0])
    assert point_weight(three * 1.01, three, three * 1.01) == 1.0  # a constant gain carries no noise


def test_the_distribution_is_calibrated_on_normalized_validation_scores():
    rng = np.random.default_rng(2)
    windows = 40 * np.exp(np.cumsum(rng.normal(0, 0.02, (300, 30)), axis=1))
    point = windows[:, -1]
    sigma = ewma_sigma(windows, 0.9)
    actual = point * np.exp(sigma * rng.standard_normal(300))
    dist = predictive_distribution(windows, actual, point, floor=1e-4, lam=0.9)
    assert dist.ewma_lambda == 0.9 and dist.sigma_floor == 1e-4 and dist.calibration_sessions == 300
    q80 = dist.score_quantiles[dist.levels.index(0.8)]
    assert q80 == pytest.approx(1.28, abs=0.15)  # |z| of a standard normal at 80%
