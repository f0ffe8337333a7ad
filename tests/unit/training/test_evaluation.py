import math

import numpy as np
import pytest

from bundle.distribution import PredictiveDistribution
from bundle.schema import ConformalInterval
from training.evaluation import (
    compare_with_naive,
    conformal_intervals,
    distribution_scores,
    point_metrics,
    static_scores,
)
from training.scores import interval_scores


def test_point_metrics_by_hand():
    m = point_metrics(np.array([10.0, 20.0]), np.array([11.0, 17.0]))
    assert m == pytest.approx({"mae": 2.0, "rmse": np.sqrt(5.0), "mape": (10 + 15) / 2})


def test_ratio_is_against_the_naive_forecast_on_the_same_targets():
    actual, last = np.array([10.0, 12.0, 11.0]), np.array([9.0, 10.0, 12.0])
    out = compare_with_naive(actual, actual + 0.5, last)
    assert out["naive_mae"] == pytest.approx(4 / 3)
    assert out["mae_ratio"] == pytest.approx(0.5 / (4 / 3))


def test_split_conformal_reaches_nominal_coverage_on_exchangeable_data():
    rng = np.random.default_rng(3)
    forecast = np.full(4000, 100.0)
    actual = forecast * np.exp(rng.normal(0, 0.02, 4000))
    intervals = conformal_intervals(
        actual[:1000], forecast[:1000], (0.8, 0.95), actual[1000:], forecast[1000:]
    )
    for interval in intervals:
        assert interval.test_coverage == pytest.approx(interval.coverage, abs=0.03)
    assert intervals[0].log_halfwidth < intervals[1].log_halfwidth


def test_sub_unit_naive_mae_gives_a_finite_ratio():
    """PETR4's naive MAE is ~R$ 0.40: the ratio must be model / naive, not +inf."""
    actual, last = np.array([10.0, 10.2, 10.1]), np.array([10.1, 10.0, 10.2])  # naive MAE 0.4 / 3
    out = compare_with_naive(actual, actual + 0.05, last)
    assert out["naive_mae"] == pytest.approx(0.4 / 3)
    assert out["mae_ratio"] == pytest.approx(0.05 / (0.4 / 3))


def test_zero_naive_mae_gives_an_infinite_ratio():
    actual = np.array([10.0, 10.2])
    out = compare_with_naive(actual, actual + 0.1, actual)
    assert out["naive_mae"] == 0.0 and out["mae_ratio"] == float("inf")


def val_with_scores(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validation actuals and forecasts whose |log(actual / forecast)| are `scores`, shuffled."""
    forecast = np.full(len(scores), 50.0)
    return forecast * np.exp(np.random.default_rng(0).permutation(scores)), forecast


@pytest.mark.parametrize(
    "coverage,q",
    [
        (0.5, 0.06),  # the ceil((n + 1) c)-th smallest of n = 10 scores: ceil(5.5) = 6th
        (0.7, 0.08),  # ceil(7.7) = 8th
        (0.95, 0.10),  # ceil(10.45) = 11 > n: clamped to the largest
    ],
)
def test_conformal_level_for_small_n_exactly(coverage, q):
    scores = np.arange(1, 11) / 100.0  # 0.01 .. 0.10, n = 10
    actual, forecast = val_with_scores(scores)
    (interval,) = conformal_intervals(actual, forecast, (coverage,))
    assert interval.coverage == coverage
    assert interval.log_halfwidth == pytest.approx(q, rel=1e-9)
    assert interval.test_coverage is None


def test_test_coverage_counts_actuals_inside_the_bounds():
    actual, forecast = val_with_scores(np.full(10, 0.1))  # q = 0.1
    test_forecast = np.full(4, 20.0)
    test_actual = test_forecast * np.exp([0.0, 0.05, -0.5, 0.5])  # 2 inside, 1 below, 1 above
    (interval,) = conformal_intervals(actual, forecast, (0.8,), test_actual, test_forecast)
    assert interval.log_halfwidth == pytest.approx(0.1)
    assert interval.test_coverage == 0.5


def test_an_actual_on_the_bound_is_covered():
    """Zero residuals give q = 0: bounds equal the forecast, and an actual equal to it is inside."""
    same = np.full(5, 30.0)
    (interval,) = conformal_intervals(same, same, (0.8,), same[:3], same[:3])
    assert interval.log_halfwidth == 0.0 and interval.test_coverage == 1.0


def test_coverage_needs_both_test_actuals_and_forecasts():
    actual, forecast = val_with_scores(np.full(10, 0.1))
    only_actual = conformal_intervals(actual, forecast, (0.8,), test_actual=actual)
    only_forecast = conformal_intervals(actual, forecast, (0.8,), test_forecast=forecast)
    assert only_actual[0].test_coverage is None and only_forecast[0].test_coverage is None


POINT = np.array([100.0, 50.0, 80.0])
ACTUAL = np.array([100.0, 60.0, 79.0])  # on the point, far above, just below


def by_hand(actual, bounds: dict, z: dict, prefix: str = "") -> dict:
    """interval_scores of a distribution symmetric in log price: quantile q = point * exp(z[q])."""
    quantiles = {q: POINT * np.exp(v) for q, v in z.items()}
    return interval_scores(actual, bounds, quantiles, prefix=prefix)


def test_served_distribution_scores_by_hand():
    """Constant windows: sigma is the floor, 0.1. |z| is 1.0 at 80% and 2.0 at 95%, so the 80%
    interval is point * exp(+-0.1), the 0.1 / 0.9 quantiles too and the 0.025 / 0.975 ones exp(+-0.2)."""
    dist = PredictiveDistribution(sigma_floor=0.1, levels=(0.8, 0.95), score_quantiles=(1.0, 2.0),
                                  tail_slope=0.5, calibration_sessions=10)  # fmt: skip
    closes = np.full((3, 5), 10.0)
    out = distribution_scores(dist, closes, ACTUAL, POINT, (0.8,))
    lo, hi = POINT * math.exp(-0.1), POINT * math.exp(0.1)
    z = {0.025: -0.2, 0.1: -0.1, 0.5: 0.0, 0.9: 0.1, 0.975: 0.2}
    assert out == pytest.approx(by_hand(ACTUAL, {0.8: (lo, hi)}, z), rel=1e-12)
    assert out["coverage_80"] == pytest.approx(2 / 3)  # 60 is above 50 * e^0.1 = 55.3
    assert out["width_80"] == pytest.approx(np.mean(hi - lo))


def test_static_scores_interpolate_the_halfwidth_linearly_from_zero():
    """One static interval, 95% with log half-width 0.2: the 0.1 / 0.9 quantiles (central 80%) get
    0.2 * 0.8 / 0.95 by interpolation from (0, 0); the median is the point."""
    interval = ConformalInterval(coverage=0.95, log_halfwidth=0.2)
    intervals = (interval,)
    out = static_scores(intervals, ACTUAL, POINT)
    h80 = 0.2 * 0.8 / 0.95
    z = {0.025: -0.2, 0.1: -h80, 0.5: 0.0, 0.9: h80, 0.975: 0.2}
    expected = by_hand(ACTUAL, {0.95: interval.bounds(POINT)}, z, prefix="static_")
    assert list(out) == ["static_coverage_95", "static_width_95", "static_winkler_95", "static_pinball"]
    assert out == pytest.approx(expected, rel=1e-12)


def test_static_scores_with_two_intervals_use_each_at_its_own_level():
    intervals = (ConformalInterval(coverage=0.8, log_halfwidth=0.1),
                 ConformalInterval(coverage=0.95, log_halfwidth=0.3))  # fmt: skip
    out = static_scores(intervals, ACTUAL, POINT)
    z = {0.025: -0.3, 0.1: -0.1, 0.5: 0.0, 0.9: 0.1, 0.975: 0.3}
    bounds = {i.coverage: i.bounds(POINT) for i in intervals}
    assert out == pytest.approx(by_hand(ACTUAL, bounds, z, prefix="static_"), rel=1e-12)
