import numpy as np
import pytest

from training.evaluation import compare_with_naive, conformal_intervals, point_metrics


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
