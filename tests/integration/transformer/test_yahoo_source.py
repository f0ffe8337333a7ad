"""The transformer's market data from Yahoo: the real yfinance client against the local stand-in of
Yahoo's chart API (tests/integration/training/yahoo_server.py) serving real PETR4 rows, through the
same cache the transformer answers from. One fetch per session; a malformed upstream answer served
stale with its reason, never a crash; refused past the bound."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from marketdata.cache import CachePolicy, MarketData, StaleDataError
from marketdata.calendar import SessionCalendar
from marketdata.sources import YahooSource
from tests.clock import Clock
from tests.integration.training.yahoo_server import yahoo_stand_in

POLICY = CachePolicy(retries=2, backoff_s=0.0, refetch_interval_s=60, max_age_s=3 * 86400, min_rows=2)


@pytest.fixture(scope="module")
def petr4(petr4_csv) -> pd.DataFrame:
    raw = pd.read_csv(petr4_csv, parse_dates=["date"])
    return raw[raw["date"] >= "2024-01-01"].reset_index(drop=True)


def test_yahoo_rows_are_cached_for_the_session_then_served_stale_then_refused(monkeypatch, tmp_path, petr4):
    last = petr4.iloc[-1]  # 2025-11-07, a Friday
    clock = Clock(datetime(2025, 11, 10, 12, 0, tzinfo=UTC))  # Monday, before B3 opens
    data = MarketData(YahooSource(history_days=800), SessionCalendar("BVMF"), POLICY, clock=clock,
                      sleep=lambda s: None)  # fmt: skip
    with yahoo_stand_in(monkeypatch, tmp_path, petr4, "PETR4.SA") as yahoo:
        first = data.get("PETR4.SA")
        assert first.source == "yfinance" and not first.stale
        assert first.last_session == last["date"].date() == date(2025, 11, 7)
        since = petr4[petr4["date"] >= pd.Timestamp(first.closes.first)]  # the source's history_days
        assert first.closes.first > date(2024, 1, 2) and len(since) > 250
        assert first.closes.values.tolist() == pytest.approx(since["close"].tolist())
        calls = len(yahoo.paths)

        clock.now += timedelta(hours=2)  # same day, Monday's close has not settled: no fetch
        again = data.get("PETR4.SA")
        assert len(yahoo.paths) == calls and again.closes is first.closes and not again.stale

        yahoo.failures = 10**6  # Yahoo answers an HTML 500 page, which yfinance fails to parse
        clock.now = datetime(2025, 11, 11, 12, 0, tzinfo=UTC)
        stale = data.get("PETR4.SA")
        assert len(yahoo.paths) > calls
        assert stale.stale and stale.last_session == date(2025, 11, 7) and "JSONDecodeError" in stale.error

        clock.now += timedelta(days=3)  # past the bound: refused, with the reason
        with pytest.raises(StaleDataError, match="over the bound"):
            data.get("PETR4.SA")
