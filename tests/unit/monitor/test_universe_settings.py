"""`--universe`: one monitor, each ticker's champion under the shared model-name rule; without it the
one-model settings are required as before."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from monitor.__main__ import Monitor, Universe
from monitor.settings import MonitorSettings


def test_each_ticker_gets_its_champion_its_label_and_its_closes():
    s = MonitorSettings(universe="PETR4.SA,VALE3.SA", tracking_uri="http://mlflow:5000", alias="staging",
                        source="csv", csv_dir=Path("/closes"))  # fmt: skip
    one = s.for_ticker("VALE3.SA")
    assert one.model_source == "models:/vale3-sa-forecaster@staging"
    assert one.model_name == "vale3-sa-forecaster" and one.ticker == "VALE3.SA"
    assert one.csv == Path("/closes/VALE3.SA.csv") and one.universe is None
    monitors = Universe(s).monitors
    assert [m.settings.model_name for m in monitors] == ["petr4-sa-forecaster", "vale3-sa-forecaster"]
    assert all(isinstance(m, Monitor) for m in monitors)


def test_the_alias_defaults_to_champion_and_yfinance_keeps_each_ticker(monkeypatch):
    monkeypatch.setenv("FORECASTER_MONITOR_UNIVERSE", "PETR4.SA,^BVSP")
    s = MonitorSettings(tracking_uri="http://mlflow:5000")
    assert s.tickers == ("PETR4.SA", "^BVSP")
    one = s.for_ticker("^BVSP")
    assert one.model_source == "models:/bvsp-forecaster@champion"
    assert one.ticker == "^BVSP" and one.csv is None


@pytest.mark.parametrize(
    "values,message",
    [
        ({}, r"--model-source and --model-name are required without --universe"),
        ({"model_source": "/b"}, r"required without --universe"),
        ({"universe": "A,B"}, r"--universe reads the registry: give --tracking-uri"),
        ({"universe": "A,B", "tracking_uri": "x", "model_name": "m"}, r"drop --model-source"),
        ({"universe": "A,B", "tracking_uri": "x", "source": "csv"}, r"reads --csv-dir"),
        ({"universe": "A,,B", "tracking_uri": "x"}, r"empty entry"),
        ({"model_source": "/b", "model_name": "m", "csv_dir": "/d"}, r"--csv-dir is for --universe"),
    ],
)  # fmt: skip
def test_bad_settings_are_named(values, message):
    with pytest.raises(ValidationError, match=message):
        MonitorSettings(**values)
