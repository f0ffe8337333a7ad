"""One monitor for a 2-ticker universe where one ticker has no champion yet: the other is scored
from the real registry on its own closes, the missing one is reported, and a ticker that fails
later keeps its last gauges while the others go on."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient
from prometheus_client import REGISTRY

from monitor.__main__ import Universe
from monitor.settings import MonitorSettings
from training.data import read_sample
from training.registry import BUNDLE_ARTIFACT_PATH

pytestmark = pytest.mark.slow


def gauge(name: str, **labels) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_a_ticker_without_a_champion_never_stops_the_others(trained, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("universe", artifact_location=str(tmp_path / "store"))
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(trained[1].bundle_path), BUNDLE_ARTIFACT_PATH)
    client.create_registered_model("uaapl-forecaster")
    version = client.create_model_version(
        "uaapl-forecaster", f"runs:/{run.info.run_id}/{BUNDLE_ARTIFACT_PATH}", run.info.run_id
    )
    client.set_registered_model_alias("uaapl-forecaster", "champion", version.version)
    closes = tmp_path / "closes"
    closes.mkdir()
    read_sample().to_csv(closes / "UAAPL.csv", index=False)
    read_sample().to_csv(closes / "UNEW.csv", index=False)  # closes, but no model trained yet

    monitor = Universe(MonitorSettings(universe="UNEW,UAAPL", tracking_uri=uri, source="csv",
                                       csv_dir=closes))  # fmt: skip
    assert monitor.run_once() is False, "one ticker failed"
    mae = gauge("forecaster_realized_mae", model="uaapl-forecaster", version=str(version.version))
    assert mae is not None and mae > 0
    assert gauge("forecaster_monitor_last_run_ok", model="uaapl-forecaster") == 1
    assert gauge("forecaster_monitor_last_run_ok", model="unew-forecaster") == 0
    assert gauge("forecaster_monitor_runs_total", model="unew-forecaster", result="failure") == 1

    (closes / "UAAPL.csv").write_text("date,close\n2024-01-02,not-a-price\n")  # its source breaks
    assert monitor.run_once() is False
    assert gauge("forecaster_monitor_last_run_ok", model="uaapl-forecaster") == 0
    assert gauge("forecaster_realized_mae", model="uaapl-forecaster", version=str(version.version)) == mae
    assert gauge("forecaster_monitor_runs_total", model="unew-forecaster", result="failure") == 2
