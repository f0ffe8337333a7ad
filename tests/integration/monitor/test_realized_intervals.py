"""Realized coverage and interval score over their own (longer) window, as training scored them."""

from __future__ import annotations

import numpy as np
import pytest

from bundle import OnnxForecaster, load_bundle
from monitor.__main__ import Monitor
from monitor.realized import realized
from monitor.settings import MonitorSettings
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

    _, result = trained
    csv = tmp_path / "closes.csv"
    read_sample().to_csv(csv, index=False)
    settings = MonitorSettings(model_source=str(result.bundle_path), model_name="wink", source="csv", csv=csv)
    monitor = Monitor(settings)
    assert monitor.run_once()
    labels = {"model": "wink", "version": monitor.served[0], "coverage": "80"}
    assert REGISTRY.get_sample_value("forecaster_realized_interval_score", labels) > 0
    assert 0 <= REGISTRY.get_sample_value("forecaster_realized_interval_coverage", labels) <= 1
