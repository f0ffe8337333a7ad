"""What a daily close series must look like before anything trains on it.

Refused (DataError, exit 2): prices beyond any traded price, dates in the future, year-long holes,
a series that never moves, and one-day jumps of 20× or more (a unit or decimal error, not a market).
Warned about (returned, printed, recorded on the MLflow run): one-day moves of 2× or ½ and beyond,
which real series do show (unadjusted splits: the packaged AAPL sample has a 4:1 split in 2020).
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

from marketdata.errors import DataError

MAX_PRICE = 1e9  # no share has traded near a billion per unit; beyond that a unit is wrong
MAX_GAP_DAYS = 366  # a year without a session is a hole in the file, not a market holiday
REFUSED_JUMP = np.log(20.0)  # a 20x move in one session: a decimal or unit error
WARNED_JUMP = np.log(2.0)  # a doubling or halving: a split in unadjusted data, or a crash


def _at(frame: pd.DataFrame, i: int) -> str:
    return f"row {i + 1} ({frame['date'].iloc[i]:%Y-%m-%d})"


def check_series(frame: pd.DataFrame, today: date | None = None) -> list[str]:
    """Raise DataError for a series nobody should train on; return warnings for suspicious ones.
    `frame` is validated already: dates parsed, ascending and unique; closes finite and positive."""
    closes = frame["close"].to_numpy(dtype=np.float64)  # pragma: no mutate (equivalent: same checks on ints)
    too_big = np.flatnonzero(closes > MAX_PRICE)
    if too_big.size:
        i = int(too_big[0])
        raise DataError(f"close {closes[i]:.4g} at {_at(frame, i)} is beyond any traded price: wrong units?")
    latest = pd.Timestamp((today or date.today()) + timedelta(days=1))
    future = np.flatnonzero(frame["date"].to_numpy() > latest.to_datetime64())
    if future.size:
        raise DataError(f"{_at(frame, int(future[0]))} is in the future ({future.size} rows)")
    gaps = frame["date"].diff().dt.days.to_numpy()
    holes = np.flatnonzero(gaps > MAX_GAP_DAYS)
    if holes.size:
        i = int(holes[0])
        raise DataError(f"{gaps[i]:.0f} days without a session before {_at(frame, i)}: a hole in the file")
    # pragma: no mutate start (equivalent: all equal closes[0] exactly when all equal closes[1])
    if len(closes) > 1 and np.all(closes == closes[0]):
        raise DataError(
            f"the close never changes ({closes[0]:g} on all {len(closes)} rows): nothing to learn"
        )
    # pragma: no mutate end
    ratios = closes[1:] / closes[:-1]
    jumps = np.abs(np.log(ratios))

    def move(i: int) -> str:  # the session i + 1 against the one before
        return (f"the close moves {ratios[i]:.3g}x in one session at {_at(frame, i + 1)} "
                f"({closes[i]:g} -> {closes[i + 1]:g})")  # fmt: skip

    refused = np.flatnonzero(jumps >= REFUSED_JUMP)
    if refused.size:
        raise DataError(f"{move(int(refused[0]))}: a unit or decimal error?")
    return [
        f"{move(int(i))}: a split in unadjusted data, or a crash"
        for i in np.flatnonzero(jumps >= WARNED_JUMP)
    ]
