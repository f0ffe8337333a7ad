"""The monitor scores the bundle exactly as training did on the same sessions."""

from __future__ import annotations

import numpy as np
import pytest

from bundle import OnnxForecaster, load_bundle
from monitor.realized import realized
from tests.integration.monitor.conftest import sample_monitor
from training.data import read_sample

pytestmark = pytest.mark.slow


def test_realized_mae_equals_the_training_forecasts_on_the_same_sessions(trained):
    _, result = trained
    frame = read_sample()
    forecaster = OnnxForecaster(load_bundle(result.bundle_path))
    got = realized(frame["close"].to_numpy(), [d.date() for d in frame["date"]], forecaster, sessions=20)
    last = result.test_forecasts.tail(20)
    assert got.mae == pytest.approx(np.mean(np.abs(last["forecast"] - last["actual"])), rel=1e-9)
    assert got.naive_mae == pytest.approx(np.mean(np.abs(last["naive"] - last["actual"])), rel=1e-9)
    inside = (last["actual"] >= last["lower_80"]) & (last["actual"] <= last["upper_80"])
    assert got.coverage[0.8] == pytest.approx(inside.mean())
    assert str(got.latest) == "2024-12-30" and got.sessions == 20


def test_a_failing_source_is_counted_and_keeps_the_last_gauges(trained, tmp_path):
    from prometheus_client import REGISTRY

    monitor = sample_monitor(trained[1], tmp_path, "unit")
    assert monitor.run_once()
    good = REGISTRY.get_sample_value(
        "forecaster_realized_mae", {"model": "unit", "version": monitor.served[0]}
    )
    monitor.settings.csv.write_text("date,close\n2024-01-02,not-a-price\n")  # the source returns garbage
    assert not monitor.run_once()
    assert (
        REGISTRY.get_sample_value("forecaster_monitor_runs_total", {"model": "unit", "result": "failure"})
        == 1
    )
    assert (
        REGISTRY.get_sample_value("forecaster_realized_mae", {"model": "unit", "version": monitor.served[0]})
        == good
    )
