"""Closes per ticker, fetched once per session and served through source outages.

Valid until the next session's close has settled (marketdata.calendar): requests in between never
fetch. A due refresh is tried `retries` times with exponential backoff, outside the event loop and
one at a time per ticker. When it fails, the last good data is served marked stale with its age,
until that age passes `max_age_s`: then requests are refused with the reason (the transformer's 503).
A source that answers but lags (its last row older than the expected session, or a fixed CSV) is
asked again at most every `refetch_interval_s`, and so is a failing one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import tenacity

from marketdata.calendar import SessionCalendar
from marketdata.errors import DataError
from marketdata.frames import validate
from marketdata.metrics import AGE, CACHE_HITS, FETCHES, LAST_SUCCESS, REFUSED, SOURCE_ERRORS, STALE
from marketdata.sanity import check_series
from marketdata.sources import Source

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


class StaleDataError(RuntimeError):
    """No data, or data older than the bound while the source fails: the reason is the message."""


@dataclass(frozen=True)
class Closes:
    """A validated series as plain arrays (a request reads it in microseconds, never through pandas)."""

    dates: np.ndarray  # datetime64[D], ascending, unique
    values: np.ndarray  # float64 closes
    first: date
    last: date

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Closes:
        dates = frame["date"].to_numpy().astype("datetime64[D]")
        values = frame["close"].to_numpy(dtype=np.float64)
        return cls(dates, values, dates[0].item(), dates[-1].item())

    def through(self, day: date) -> int:
        """How many sessions are at or before `day`."""
        return int(np.searchsorted(self.dates, np.datetime64(day, "D"), side="right"))


@dataclass(frozen=True)
class Snapshot:
    """The closes one request is answered from, and how fresh they are."""

    ticker: str
    closes: Closes
    source: str
    fetched_at: datetime
    age_s: float
    stale: bool  # the last refresh failed: this is the last good data
    error: str | None = None  # why the last refresh failed, when stale

    @property
    def last_session(self) -> date:
        return self.closes.last


@dataclass
class _Entry:
    closes: Closes | None = None
    fetched_at: datetime | None = None
    valid_until: datetime | None = None  # the next session's settled close after the data's last
    attempted_at: datetime | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def last_session(self) -> date | None:
        return None if self.closes is None else self.closes.last


@dataclass(frozen=True)
class CachePolicy:
    retries: int = 3
    backoff_s: float = 0.5
    refetch_interval_s: float = 300.0
    max_age_s: float = 4 * 86400.0  # a long weekend plus a holiday, then refuse
    min_rows: int = 2


class MarketData:
    def __init__(
        self,
        source: Source,
        calendar: SessionCalendar,
        policy: CachePolicy | None = None,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.source, self.calendar = source, calendar
        self.policy = policy or CachePolicy()
        self.clock, self.sleep = clock, sleep
        self._entries: dict[str, _Entry] = {}
        self._guard = threading.Lock()

    def _entry(self, ticker: str) -> _Entry:
        with self._guard:
            return self._entries.setdefault(ticker, _Entry())

    def _due(self, entry: _Entry, now: datetime, as_of: date | None) -> bool:
        """Whether this request needs a refresh first (never when the cache answers it)."""
        last = entry.last_session
        if last is not None and as_of is not None and last >= as_of:
            return False  # a past date the cache already covers: nothing newer is needed
        if entry.valid_until is not None and now < entry.valid_until:
            return False  # no newer close can exist yet
        attempted = entry.attempted_at
        return attempted is None or (now - attempted).total_seconds() >= self.policy.refetch_interval_s

    def cached(self, ticker: str, as_of: date | None = None) -> Snapshot | None:
        """The snapshot when no refresh is due (no I/O, no waiting), else None: call `get`."""
        entry, now = self._entry(ticker), self.clock()
        if entry.closes is None or self._due(entry, now, as_of):
            return None
        return self._serve(ticker, entry, now, as_of)

    def get(self, ticker: str, as_of: date | None = None) -> Snapshot:
        """The snapshot, refreshed first when due (blocking: call it off the event loop)."""
        entry = self._entry(ticker)
        with entry.lock:  # one refresh per ticker at a time; the others wait and reuse it
            now = self.clock()
            if self._due(entry, now, as_of):
                self._refresh(ticker, entry, now)
                return self._serve(ticker, entry, self.clock(), as_of, fetched=entry.error is None)
        return self._serve(ticker, entry, self.clock(), as_of)

    def _serve(
        self, ticker: str, entry: _Entry, now: datetime, as_of: date | None, fetched: bool = False
    ) -> Snapshot:
        if not fetched:
            CACHE_HITS.labels(ticker).inc()
        if entry.closes is None or entry.fetched_at is None:
            REFUSED.labels(ticker).inc()
            raise StaleDataError(f"no market data for {ticker} from {self.source.name}: {entry.error}")
        age = (now - entry.fetched_at).total_seconds()
        covered = as_of is not None and entry.last_session is not None and entry.last_session >= as_of
        stale = entry.error is not None and not covered
        AGE.labels(ticker).set(age)
        if stale and age > self.policy.max_age_s:
            REFUSED.labels(ticker).inc()
            raise StaleDataError(
                f"market data for {ticker} is {age:.0f} s old (last good fetch "
                f"{entry.fetched_at:%Y-%m-%dT%H:%M:%SZ}, data through {entry.last_session}), "
                f"over the bound of {self.policy.max_age_s:g} s; "
                f"{self.source.name} is failing: {entry.error}"
            )
        return Snapshot(ticker, entry.closes, self.source.name, entry.fetched_at, age, stale,
                        entry.error if stale else None)  # fmt: skip

    def _refresh(self, ticker: str, entry: _Entry, now: datetime) -> None:
        """Up to `retries` attempts with exponential backoff; the entry keeps its last good data."""

        def failed(state: tenacity.RetryCallState) -> None:  # network, parsing, validation alike
            exc = state.outcome.exception()
            SOURCE_ERRORS.labels(ticker, "data" if isinstance(exc, DataError) else "source").inc()
            log.warning("fetch %s from %s, attempt %d/%d: %s: %s", ticker, self.source.name,
                        state.attempt_number, self.policy.retries, type(exc).__name__, exc)  # fmt: skip

        closes = tenacity.Retrying(  # the last error is the answer when every attempt failed
            stop=tenacity.stop_after_attempt(self.policy.retries), after=failed, sleep=self.sleep,
            wait=tenacity.wait_exponential(multiplier=self.policy.backoff_s),
            retry_error_callback=lambda state: state.outcome.exception(),
        )(self._fetch_valid, ticker)  # fmt: skip
        if not isinstance(closes, Closes):  # never crash a request: the last good data stays
            entry.attempted_at, entry.error = self.clock(), f"{type(closes).__name__}: {closes}"
            FETCHES.labels(ticker, "failure").inc()
            STALE.labels(ticker).set(1 if entry.closes is not None else 0)
            return
        entry.closes, entry.fetched_at, entry.attempted_at, entry.error = closes, self.clock(), now, None
        entry.valid_until = self.calendar.settled_close_after(closes.last)
        FETCHES.labels(ticker, "success").inc()
        STALE.labels(ticker).set(0)
        LAST_SUCCESS.labels(ticker).set(entry.fetched_at.timestamp())

    def _settled(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Rows of sessions whose close has settled: during a session Yahoo's last daily row is the
        live price, not a close, and must not be cached as one."""
        settled, dropped = self.calendar.settled_rows(frame, self.clock())
        if dropped:
            log.info("dropped %d row(s) of sessions not yet closed", dropped)
        return settled

    def _fetch_valid(self, ticker: str) -> Closes:
        """The source's rows through training's checks (frozen sessions dropped, sanity rules)."""
        frame = self._settled(self.source.fetch(ticker))
        frame, _dropped = validate(frame, window=1, min_windows=max(self.policy.min_rows - 1, 0),
                                   drop_frozen=True)  # fmt: skip
        for warning in check_series(frame, today=self.clock().date()):
            log.warning("%s: %s", ticker, warning)
        return Closes.of(frame)
