"""Realized accuracy on published closes, with a tiny real bundle whose forecasts are known by hand:
with scaler center c and weight 0, the forecast of every session is `previous close * exp(c)`."""

from __future__ import annotations

import dataclasses
import math
from datetime import date, timedelta

import numpy as np
import pytest

from bundle import OnnxForecaster
from monitor.realized import Realized, realized
from tests.tiny_bundle import tiny_bundle

WINDOW = 5
CLOSES = np.array([30.0, 30.4, 30.1, 30.6, 30.2, 30.5, 30.3, 30.9, 30.7, 31.0])
DATES = [date(2025, 1, 1) + timedelta(days=i) for i in range(len(CLOSES))]


def forecaster(tmp_path, center: float = 0.01, q: float = 0.005) -> OnnxForecaster:
    return OnnxForecaster(tiny_bundle(tmp_path, window=WINDOW, center=center, intervals=((0.8, q),)))


def test_realized_mae_naive_mae_and_coverage_by_hand(tmp_path):
    got = realized(CLOSES, DATES, forecaster(tmp_path), sessions=4)
    actual, previous = CLOSES[-4:], CLOSES[-5:-1]
    forecast = previous * math.exp(0.01)
    assert got.sessions == 4 and got.latest == date(2025, 1, 10)
    assert got.mae == pytest.approx(np.mean(np.abs(forecast - actual)), rel=1e-12)
    assert got.naive_mae == pytest.approx(np.mean(np.abs(previous - actual)), rel=1e-12)  # = 0.325
    inside = (actual >= forecast * math.exp(-0.005)) & (actual <= forecast * math.exp(0.005))
    assert got.coverage == {0.8: pytest.approx(inside.mean())}
    assert 0 < got.coverage[0.8] < 1  # the case tells inside from outside


def test_an_actual_on_the_interval_bound_is_covered(tmp_path):
    """center 0 and q 0: the forecast and both bounds equal the previous close exactly."""
    flat = np.full(8, 12.5)
    got = realized(flat, DATES[:8], forecaster(tmp_path, center=0.0, q=0.0), sessions=3)
    assert got.coverage == {0.8: 1.0} and got.mae == 0.0 and got.naive_mae == 0.0


@pytest.mark.parametrize("sessions,interval_sessions", [(2, 4), (4, 2)])
def test_point_scores_use_the_last_sessions_and_interval_scores_the_last_interval_sessions(
    tmp_path, sessions, interval_sessions
):
    model = forecaster(tmp_path)
    got = realized(CLOSES, DATES, model, sessions=sessions, interval_sessions=interval_sessions)
    points = realized(CLOSES, DATES, model, sessions=sessions)
    bands = realized(CLOSES, DATES, model, sessions=interval_sessions)
    assert (got.sessions, got.interval_sessions) == (sessions, interval_sessions)
    assert (got.mae, got.naive_mae) == (points.mae, points.naive_mae)
    assert (got.coverage, got.winkler) == (bands.coverage, bands.winkler)
    assert points.mae != bands.mae and points.winkler != bands.winkler  # the case tells them apart
    assert bands.interval_sessions == interval_sessions  # the default: `sessions`


def test_float32_closes_are_scored_in_float64(tmp_path):
    # Moves over 2x: a float32 difference of such closes is rounded, a float64 one is exact.
    closes32 = np.array([30.1, 70.3, 30.7, 71.9, 29.3, 73.1, 31.7, 69.9, 30.3, 72.7], dtype=np.float32)
    model = forecaster(tmp_path)
    got = realized(closes32, DATES, model, sessions=4)
    assert got == realized(closes32.astype(np.float64), DATES, model, sessions=4)


def test_exactly_window_plus_sessions_closes_is_enough(tmp_path):
    got = realized(CLOSES[-(WINDOW + 3) :], DATES[-(WINDOW + 3) :], forecaster(tmp_path), sessions=3)
    assert got.sessions == 3
    assert got.naive_mae == pytest.approx(np.mean(np.abs(CLOSES[-3:] - CLOSES[-4:-1])))


@pytest.mark.parametrize("missing", [1, 2])
def test_too_few_closes_is_an_error_naming_the_need(tmp_path, missing):
    closes = CLOSES[: WINDOW + 3 - missing]
    with pytest.raises(ValueError, match=rf"need 8 closes for 3 sessions, got {len(closes)}"):
        realized(closes, DATES[: len(closes)], forecaster(tmp_path), sessions=3)


@pytest.mark.parametrize("naive_mae,ratio", [(0.4, 1.25), (0.05, 10.0), (2.0, 0.25)])
def test_ratio_is_mae_over_naive_also_below_one_price_unit(naive_mae, ratio):
    """PETR4's naive MAE is ~R$ 0.40: a ratio of +inf there would fire the MAE alert forever."""
    r = Realized(sessions=20, mae=0.5, naive_mae=naive_mae, coverage={}, latest=date(2025, 1, 1))
    assert r.ratio == pytest.approx(ratio)


def test_ratio_is_infinite_when_naive_is_exact():
    assert Realized(20, 0.5, 0.0, {}, date(2025, 1, 1)).ratio == math.inf


def test_result_is_immutable():
    r = Realized(20, 0.5, 0.4, {}, date(2025, 1, 1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.mae = 0.0  # type: ignore[misc]
