"""Daily closes from yfinance, a CSV, or a real sample shipped in a PyPI package; validated."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bundle import BundleMetadata
from bundle.transform import recent_windows
from marketdata.frames import (  # noqa: F401  (re-exported: training's callers import them from here)
    SAMPLE_DESCRIPTION,
    SAMPLE_FILE,
    SAMPLE_PACKAGE,
    normalize_columns,
    read_csv,
    read_sample,
    validate,
)
from marketdata.history import FetchSettings, fetch_yfinance  # noqa: F401  (re-exported)
from marketdata.sanity import check_series
from training.errors import DataError  # noqa: F401  (re-exported)
from training.settings import TrainSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Series:
    """A validated daily close series, oldest first."""

    frame: pd.DataFrame  # columns: date (datetime64), close (float64), volume (float64 or NaN)
    ticker: str
    description: str
    dropped_frozen: int = 0
    warnings: tuple[str, ...] = ()  # suspicious but kept (training.sanity): printed and recorded

    @property
    def closes(self):
        return self.frame["close"].to_numpy()


def sample_test_windows(metadata: BundleMetadata) -> np.ndarray:
    """The raw-close windows of a sample-trained bundle's test part, rebuilt from the sample."""
    closes = read_sample()["close"].to_numpy()
    return recent_windows(closes, metadata.features.window, metadata.splits["test"].sessions)


def load_series(settings: TrainSettings, min_windows: int) -> Series:
    """Fetch and validate according to settings; the only entry point the pipeline uses."""
    if settings.source == "sample":
        frame, ticker, what = read_sample(), "AAPL", SAMPLE_DESCRIPTION
    elif settings.source == "csv":
        path = settings.csv_path
        frame, ticker, what = read_csv(path), settings.ticker, f"CSV {path}"
    else:
        frame, ticker, what = (
            fetch_yfinance(settings),
            settings.ticker,
            f"yfinance {settings.ticker}",
        )
    if settings.end is not None:
        frame = frame[frame["date"].isna() | (frame["date"] <= pd.Timestamp(settings.end))].reset_index(
            drop=True
        )
    frame, dropped = validate(frame, settings.window, min_windows, settings.drop_frozen)
    warnings = check_series(frame)
    for warning in warnings:
        log.warning("data: %s", warning)
    return Series(frame=frame, ticker=ticker, description=what, dropped_frozen=dropped,
                  warnings=tuple(warnings))  # fmt: skip
