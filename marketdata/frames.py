"""Daily closes as a validated frame: CSV and packaged-sample readers, column mapping, row checks.

Torch-free and shared: training validates what it trains on, and the transformer what it forecasts
from, with the same rules (training.data re-exports these names).
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from marketdata.errors import DataError

log = logging.getLogger(__name__)

SAMPLE_PACKAGE = "hvsampledata"
SAMPLE_FILE = "_data/apple_stocks.csv"
SAMPLE_DESCRIPTION = (
    "AAPL daily OHLCV 2019-01-02..2024-12-30 (1,509 sessions, unadjusted close), "
    "from the hvsampledata package (BSD), file hvsampledata/_data/apple_stocks.csv"
)
# Header variants seen in the wild, lower-cased -> our name.
_ALIASES = {
    "date": "date",
    "datetime": "date",
    "timestamp": "date",
    "data": "date",
    "close": "close",
    "fechamento": "close",
    "price": "close",
    "volume": "volume",
    "vol": "volume",
    "qtd": "volume",
    "open": "open",
    "high": "high",
    "low": "low",
}
#: Kept when the source has them (NaN otherwise): the online intervals' range-based volatility.
RANGE_COLUMNS = ("open", "high", "low")


ISO_DATE = r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:?\d{2}|Z)?)?$"
DAY_FIRST = r"^\d{1,2}[/.]\d{1,2}[/.]\d{4}$"


def _session_dates(values: pd.Series) -> pd.Series:
    """The session date as written: `2024-01-02 00:00:00+09:00` is 2 January, not 1 January in UTC.
    ISO dates keep their own calendar date; `13/01/2024` (B3's and Excel's exports) is day-first;
    anything else is parsed by pandas (naive, or converted to UTC)."""
    text = values.astype(str).str.strip()
    if len(text) and text.str.match(ISO_DATE).all():
        return pd.to_datetime(text.str.slice(0, 10), format="%Y-%m-%d", errors="coerce")
    if len(text) and text.str.match(DAY_FIRST).all():
        dates = text.str.replace(".", "/", regex=False).str.slice(0, 10)
        return pd.to_datetime(dates, format="%d/%m/%Y", errors="coerce")
    parsed = pd.to_datetime(values, errors="coerce", utc=True)
    return parsed.dt.tz_localize(None).dt.normalize()


def normalize_columns(raw: pd.DataFrame) -> pd.DataFrame:
    """Map common headers (yfinance's `Date,Open,High,Low,Close,Adj Close,Volume`, ours, B3's).

    `date`, `close` and `volume` always; `open`, `high`, `low` when the source has them (never
    checked here: a bad range only falls back to the squared return in `bundle.har`)."""
    frame = raw.copy()
    if "date" not in {str(c).strip().lower() for c in frame.columns} and frame.index.name:
        frame = frame.reset_index()
    renamed = {c: _ALIASES.get(str(c).strip().lower()) for c in frame.columns}
    frame = frame.rename(columns={c: n for c, n in renamed.items() if n})
    frame = frame.loc[:, ~frame.columns.duplicated()]
    missing = {"date", "close"} - set(frame.columns)
    if missing:
        raise DataError(f"missing column(s) {sorted(missing)}; found {list(raw.columns)}")
    out = pd.DataFrame({"date": _session_dates(frame["date"])})
    out["close"] = pd.to_numeric(frame["close"], errors="coerce")
    out["volume"] = pd.to_numeric(frame["volume"], errors="coerce") if "volume" in frame else float("nan")
    for name in RANGE_COLUMNS:
        if name in frame:
            out[name] = pd.to_numeric(frame[name], errors="coerce")
    return out.reset_index(drop=True)


def validate(
    frame: pd.DataFrame, window: int, min_windows: int, drop_frozen: bool
) -> tuple[pd.DataFrame, int]:
    """Check a normalized frame; return it (frozen sessions dropped) and the dropped count."""

    def row(i: int) -> str:
        return (
            f"row {i + 1} ({frame['date'].iloc[i]:%Y-%m-%d})"
            if pd.notna(frame["date"].iloc[i])
            else f"row {i + 1}"
        )

    bad_dates = frame.index[frame["date"].isna()]
    if len(bad_dates):
        raise DataError(f"unparseable date at row {bad_dates[0] + 1} ({len(bad_dates)} rows); "
                        "dates are read as ISO 8601 (YYYY-MM-DD) or DD/MM/YYYY")  # fmt: skip
    nan_close = frame.index[~np.isfinite(frame["close"].to_numpy(dtype=np.float64))]
    if len(nan_close):
        raise DataError(f"NaN or missing close at {row(nan_close[0])} ({len(nan_close)} rows)")
    nonpos = frame.index[frame["close"] <= 0]
    if len(nonpos):
        raise DataError(
            f"non-positive close {frame['close'].iloc[nonpos[0]]} at {row(nonpos[0])} ({len(nonpos)} rows)"
        )
    dup = frame.index[frame["date"].duplicated()]
    if len(dup):
        raise DataError(f"duplicate date at {row(dup[0])} ({len(dup)} duplicates)")
    unsorted = frame.index[1:][frame["date"].diff().iloc[1:] < pd.Timedelta(0)]
    if len(unsorted):
        raise DataError(f"dates not ascending at {row(unsorted[0])} ({len(unsorted)} rows out of order)")
    dropped = 0
    if drop_frozen:
        frozen = frame["volume"] == 0
        dropped = int(frozen.sum())
        if dropped:
            log.warning(
                "dropped %d zero-volume (frozen) sessions, first %s",
                dropped,
                row(int(frame.index[frozen][0])),
            )
            frame = frame.loc[~frozen].reset_index(drop=True)
    needed = window + min_windows
    if len(frame) < needed:
        raise DataError(
            f"too few rows: {len(frame)} sessions, need at least {needed} "
            f"(window {window} + {min_windows} windows)"
        )
    return frame, dropped


def read_csv(path: Path) -> pd.DataFrame:
    """Comma- or semicolon-separated (a Brazilian export: `Data;Fechamento` with `12,34` decimals,
    detected by its header and read with decimal commas); anything else is a DataError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"CSV not found: {path}")
    head = path.read_bytes()[:4096]
    if not head.strip():
        raise DataError(f"{path} is empty")
    if head.startswith(b"\x1f\x8b") or b"\x00" in head:
        raise DataError(f"{path} is not a text CSV (compressed or binary): decompress or export it as CSV")
    first = head.splitlines()[0].decode("utf-8", errors="replace")
    semicolons = first.count(";") > first.count(",")
    try:
        raw = pd.read_csv(path, sep=";", decimal=",", thousands=".") if semicolons else pd.read_csv(path)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path} cannot be read as CSV: {exc}") from exc
    if semicolons:
        log.warning("%s: semicolon-separated with decimal commas (a Brazilian export); read as such", path)
    return normalize_columns(raw)


def read_sample() -> pd.DataFrame:
    with resources.files(SAMPLE_PACKAGE).joinpath(SAMPLE_FILE).open() as handle:
        return normalize_columns(pd.read_csv(handle))
