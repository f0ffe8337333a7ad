"""The yfinance source, parsing real PETR4 rows served in Yahoo's JSON shape from 127.0.0.1."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.conftest import fast_settings
from tests.integration.training.yahoo_server import yahoo_stand_in
from training import pipeline
from training.data import DataError, fetch_yfinance, load_series


@pytest.fixture
def petr4_2024(petr4_csv) -> pd.DataFrame:
    raw = pd.read_csv(petr4_csv, parse_dates=["date"])
    return raw[(raw["date"] >= "2023-01-01") & (raw["date"] < "2025-01-01")].reset_index(drop=True)


def test_parses_a_yahoo_chart_response_into_the_same_closes(monkeypatch, tmp_path, petr4_2024):
    settings = fast_settings(
        tmp_path,
        source="yfinance",
        ticker="PETR4.SA",
        start="2023-01-01",
        end="2024-12-31",
        fetch_backoff_s=0,
    )
    with yahoo_stand_in(monkeypatch, tmp_path, petr4_2024, "PETR4.SA") as yahoo:
        frame = fetch_yfinance(settings)
    assert any(p.startswith("/v8/finance/chart/PETR4.SA") and "period1=" in p for p in yahoo.paths)
    expected = read_csv_frame(petr4_2024)
    assert frame["date"].tolist() == expected["date"].tolist()
    assert frame["close"].to_numpy() == pytest.approx(expected["close"].to_numpy())
    assert (frame["volume"] == petr4_2024["volume"]).all()


def read_csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(date=pd.to_datetime(frame["date"]))


def test_frozen_sessions_from_yahoo_are_dropped_and_counted(monkeypatch, tmp_path, petr4_2024):
    frozen = petr4_2024.copy()
    frozen.loc[100:104, "volume"] = 0  # a stale run, as in Yahoo's PETR4.SA history
    frozen.loc[100:104, "close"] = frozen.loc[99, "close"]
    settings = fast_settings(tmp_path, source="yfinance", start="2023-01-01", window=20, fetch_backoff_s=0)
    with yahoo_stand_in(monkeypatch, tmp_path, frozen, "PETR4.SA"):
        series = load_series(settings, min_windows=50)
    assert series.dropped_frozen == 5 and len(series.frame) == len(frozen) - 5


def test_transient_failures_are_retried(monkeypatch, tmp_path, petr4_2024):
    settings = fast_settings(
        tmp_path, source="yfinance", start="2023-01-01", fetch_retries=4, fetch_backoff_s=0
    )
    with yahoo_stand_in(monkeypatch, tmp_path, petr4_2024, "PETR4.SA", failures=2) as yahoo:
        frame = fetch_yfinance(settings, sleep=lambda s: None)
    assert len(frame) == len(petr4_2024) and len(yahoo.paths) >= 3


def test_persistent_failure_exits_with_the_registry_untouched(monkeypatch, tmp_path, petr4_2024):
    settings = fast_settings(
        tmp_path, source="yfinance", start="2023-01-01", fetch_retries=3, fetch_backoff_s=0.01
    )
    delays = []
    monkeypatch.setattr("marketdata.history.time.sleep", delays.append)
    with (
        yahoo_stand_in(monkeypatch, tmp_path, petr4_2024, "PETR4.SA", failures=10**6),
        pytest.raises(DataError, match=r"could not fetch PETR4\.SA after 3 attempts"),
    ):
        pipeline.run(settings)
    assert delays == [0.01, 0.02]  # exponential backoff between the 3 attempts
    assert not (tmp_path / "mlflow.db").exists()
