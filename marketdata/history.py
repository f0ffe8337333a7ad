"""Yahoo's daily history with bounded retries, for the jobs that read it once per run (training,
the monitor); the transformer's cache retries through marketdata.cache instead."""

from __future__ import annotations

import logging
import time
from datetime import date
from typing import Protocol

import pandas as pd

from marketdata.errors import DataError
from marketdata.sources import yahoo_daily

log = logging.getLogger(__name__)


class FetchSettings(Protocol):
    """What a Yahoo fetch needs (TrainSettings and the monitor's settings both have it)."""

    ticker: str
    start: date
    end: date | None
    fetch_retries: int
    fetch_backoff_s: float


def fetch_yfinance(settings: FetchSettings, sleep=None) -> pd.DataFrame:
    """Daily history from Yahoo, retried with exponential backoff; raises DataError at the end."""
    sleep = sleep or time.sleep
    delay, last_error = settings.fetch_backoff_s, None
    for attempt in range(1, settings.fetch_retries + 1):
        try:
            return yahoo_daily(settings.ticker, settings.start, settings.end)
        except Exception as exc:  # network, parsing and Yahoo errors alike
            last_error = exc
            log.warning(
                "fetch %s attempt %d/%d failed: %s",
                settings.ticker,
                attempt,
                settings.fetch_retries,
                exc,
            )
            if attempt < settings.fetch_retries:
                sleep(delay)
                delay *= 2
    raise DataError(
        f"could not fetch {settings.ticker} after {settings.fetch_retries} attempts: {last_error}"
    )
