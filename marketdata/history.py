"""Yahoo's daily history with bounded retries, for the jobs that read it once per run (training,
the monitor); the transformer's cache retries through marketdata.cache instead."""

from __future__ import annotations

import logging
import time
from datetime import date
from typing import NoReturn, Protocol

import pandas as pd
import tenacity

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

    def give_up(state: tenacity.RetryCallState) -> NoReturn:
        error = state.outcome and state.outcome.exception()
        raise DataError(f"could not fetch {settings.ticker} after {settings.fetch_retries} attempts: {error}")

    def warn(state: tenacity.RetryCallState) -> None:
        error = state.outcome and state.outcome.exception()
        log.warning("fetch %s attempt %d/%d failed: %s", settings.ticker, state.attempt_number,
                    settings.fetch_retries, error)  # fmt: skip

    retrying = tenacity.Retrying(  # network, parsing and Yahoo errors alike
        stop=tenacity.stop_after_attempt(settings.fetch_retries), after=warn, retry_error_callback=give_up,
        wait=tenacity.wait_exponential(multiplier=settings.fetch_backoff_s), sleep=sleep or time.sleep,
    )  # fmt: skip
    return retrying(yahoo_daily, settings.ticker, settings.start, settings.end)
