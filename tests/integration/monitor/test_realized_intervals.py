"""Realized coverage and interval score over their own (longer) window, as training scored them."""

from __future__ import annotations

import numpy as np
import pytest

from bundle import OnnxForecaster, load_bundle
from monitor.realized import realized
from tests.integration.monitor.conftest import sample_monitor
from training.data import read_sample
from training.scores import winkler

pytestmark = pytest.mark.slow


def test_realized_coverage_and_winkler_over_the_interval_window(trained):
    _, result = trained
    frame = read_sample()
    forecaster = OnnxForecaster(load_bundle(result.bundle_path))
    got = realized(frame["close"].to_numpy(), [d.date() for d in frame["date"]], forecaster, sessions=20,
                   interval_sessions=100)  # fmt: skip
    band, point = result.test_forecasts.tail(100), result.test_forecasts.tail(20)
    assert got.mae == pytest.approx(np.mean(np.abs(point["forecast"] - point["actual"])), rel=1e-9)
    for c in (0.8, 0.95):
        pct = round(c * 100)
        lo, hi, y = band[f"lower_{pct}"], band[f"upper_{pct}"], band["actual"]
        assert got.coverage[c] == pytest.approx(((y >= lo) & (y <= hi)).mean())
        assert got.winkler[c] == pytest.approx(
            winkler(y.to_numpy(), lo.to_numpy(), hi.to_numpy(), c), rel=1e-9
        )
    assert got.interval_sessions == 100 and got.sessions == 20


def test_interval_score_gauge_is_exported(trained, tmp_path):
    from prometheus_client import REGISTRY

    monitor = sample_monitor(trained[1], tmp_path, "wink")
    got = monitor.evaluate()
    labels = {"model": "wink", "version": monitor.served[0], "coverage": "80"}
    assert REGISTRY.get_sample_value("forecaster_realized_interval_score", labels) == got.winkler[0.8] > 0
    assert REGISTRY.get_sample_value("forecaster_realized_interval_coverage", labels) == got.coverage[0.8]
