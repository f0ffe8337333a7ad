"""Where closes come from: Yahoo in a cluster, a CSV or the packaged sample offline.

A source answers one raw, column-normalized frame per call and raises on any failure; retries,
validation and the cache are the cache's job (marketdata.cache), so every source is tried alike.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Protocol

import pandas as pd

from marketdata.errors import DataError
from marketdata.frames import SAMPLE_DESCRIPTION, normalize_columns, read_csv, read_sample


class Source(Protocol):
    name: str

    def fetch(self, ticker: str) -> pd.DataFrame:
        """All daily rows of `ticker` this source has, columns date/close/volume; raises on failure."""
        ...


class CsvSource:
    """A CSV file read on every fetch (an updated file is picked up at the next refresh)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.name = f"csv:{self.path.name}"

    def fetch(self, ticker: str) -> pd.DataFrame:
        return read_csv(self.path)


class SampleSource:
    """The real AAPL sample shipped in a PyPI package: the offline demo's source."""

    name = "sample"
    description = SAMPLE_DESCRIPTION

    def fetch(self, ticker: str) -> pd.DataFrame:
        return read_sample()


class YahooSource:
    """Yahoo daily history through yfinance, the last `history_days` calendar days (no retries here)."""

    name = "yfinance"

    def __init__(self, history_days: int = 400, timeout_s: float = 10.0) -> None:
        self.history_days, self.timeout_s = history_days, timeout_s

    def fetch(self, ticker: str) -> pd.DataFrame:
        start = date.today() - timedelta(days=self.history_days)
        return yahoo_daily(ticker, start, timeout_s=self.timeout_s)


def yahoo_daily(
    ticker: str, start: date, end: date | None = None, timeout_s: float | None = None
) -> pd.DataFrame:
    """One yfinance call for unadjusted daily rows from `start` (to `end`), column-normalized;
    DataError when Yahoo answers no rows. No retries: the caller's loop owns them."""
    import yfinance as yf

    timeout = {} if timeout_s is None else {"timeout": timeout_s}  # else yfinance's own default
    raw = yf.Ticker(ticker).history(
        start=start.isoformat(), end=end.isoformat() if end else None, interval="1d",
        auto_adjust=False, actions=False, raise_errors=True, **timeout,
    )  # fmt: skip
    if raw is None or raw.empty:
        raise DataError(f"yfinance returned no rows for {ticker}")
    return normalize_columns(raw)
