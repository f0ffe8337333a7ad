"""KServe's time-series API in-process: quantiles from the declared outputs, horizons, refusals."""

from __future__ import annotations

import numpy as np
import pytest
from kserve.protocol.rest.timeseries.types import ForecastRequest

from predictor import timeseries
from serving.errors import Rejected
from tests.tiny_bundle import INTERVALS, WINDOW, expected_forecast, windows


def body(series, horizon=1, **options) -> ForecastRequest:
    item = {"type": "univariate_time_series", "name": "s", "series": list(series), "frequency": "D"}
    return ForecastRequest.model_validate(
        {"model": "tiny", "inputs": [item], "options": {"horizon": horizon, **options}}
    )


def content(response):
    return response.outputs[0].content[0]


def test_default_quantiles_are_the_declared_outputs(model):
    result = content(timeseries.forecast(model, body(windows(1)[0]), 20, 256))
    assert sorted(map(float, result.quantiles)) == [0.025, 0.1, 0.5, 0.9, 0.975]


def test_only_the_last_window_of_a_long_series_is_used(model):
    history = np.concatenate([np.full(30, 1000.0), windows(1)[0]])
    result = content(timeseries.forecast(model, body(history), 20, 256))
    assert result.mean_forecast == pytest.approx(expected_forecast(windows(1)).tolist(), rel=1e-6)


def test_quantiles_match_the_v2_interval_bounds_and_widen_with_sqrt_h(model):
    result = content(
        timeseries.forecast(model, body(windows(1)[0], horizon=4, quantiles=[0.1, 0.9]), 20, 256)
    )
    mean = np.asarray(result.mean_forecast)
    q80 = INTERVALS[0].log_halfwidth
    widen = np.sqrt(np.arange(1, 5))
    assert np.asarray(result.quantiles["0.1"]) == pytest.approx(mean * np.exp(-q80 * widen), rel=1e-9)
    assert np.asarray(result.quantiles["0.9"]) == pytest.approx(mean * np.exp(q80 * widen), rel=1e-9)


def test_a_recursive_horizon_feeds_forecasts_back(model):
    result = content(timeseries.forecast(model, body(windows(1)[0], horizon=2), 20, 256))
    first = expected_forecast(windows(1))
    second = expected_forecast(np.concatenate([windows(1)[:, 1:], first[:, None]], axis=1))
    assert result.mean_forecast == pytest.approx([first[0], second[0]], rel=1e-6)


@pytest.mark.parametrize(
    "series,options,message,reason",
    [
        (None, {"horizon": 0}, "horizon 0 is outside 1..20", "horizon"),
        (None, {"horizon": 21}, "horizon 21 is outside 1..20", "horizon"),
        (None, {"horizon": 1, "quantiles": [0.3]}, "quantiles [0.3] are not available", "quantile"),
        ([1.0] * 3, {"horizon": 1}, f"has 3 values; this model needs at least {WINDOW}", "window"),
        ([*[1.0] * (WINDOW - 1), -1.0], {"horizon": 1}, "prices must be > 0", "non_positive"),
    ],
)
def test_bad_requests_are_rejected_naming_the_problem(model, series, options, message, reason):
    request = body(windows(1)[0] if series is None else series, **options)
    with pytest.raises(Rejected) as caught:
        timeseries.forecast(model, request, 20, 256)
    assert message in caught.value.reason and caught.value.label == reason
