"""Closes per ticker, fetched once per session and served through source outages, with their
freshness judged against the exchange calendar.

Valid until the next session's close has settled (marketdata.calendar): requests in between never
fetch. A due refresh is tried `retries` times with exponential backoff, outside the event loop and
one at a time per ticker; when it fails, the last good data stays.

Freshness is the calendar's, not the fetch's: data is current while it holds the session it should
(the latest settled one, or the as-of session of a request that names a date). Otherwise its age is
the time since the first session it lacks settled, and it is served marked stale, whether the source
fails or answers old rows, until that age passes `max_age_s`: then requests are refused with the
reason (the transformer's 503). A source that answers but lags (its last row older than the expected
session, or a fixed CSV) is asked again at most every `refetch_interval_s`, and so is a failing one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import tenacity
from prometheus_client import Counter, Gauge

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
    """No data, or data lacking a settled session for longer than the bound: the reason is the message."""


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
    expected: date | None  # the session the data should hold: the latest settled one, or the as-of one
    age_s: float  # since the first session the data lacks settled; 0 while it holds `expected`
    stale: bool  # it lacks `expected` (the source fails or lags)
    error: str | None = None  # why the last refresh failed, when stale

    @property
    def last_session(self) -> date:
        return self.closes.last


@dataclass
class _Series:
    """One ticker's series every request updates, labelled once (prometheus_client's `labels` is
    most of a cached request's cost)."""

    hits: Counter
    age: Gauge
    stale: Gauge

    @classmethod
    def of(cls, ticker: str) -> _Series:
        return cls(CACHE_HITS.labels(ticker), AGE.labels(ticker), STALE.labels(ticker))


@dataclass
class _Entry:
    series: _Series
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
    max_age_s: float = 4 * 86400.0  # refuse data that has lacked a settled session's close this long
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
        entry = self._entries.get(ticker)
        if entry is not None:
            return entry
        with self._guard:
            return self._entries.setdefault(ticker, _Entry(_Series.of(ticker)))

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
            entry.series.hits.inc()
        if entry.closes is None or entry.fetched_at is None:
            REFUSED.labels(ticker).inc()
            raise StaleDataError(f"no market data for {ticker} from {self.source.name}: {entry.error}")
        current = self.expected_session(now, None)
        current_age = self._age(entry, now, current)
        entry.series.age.set(current_age or 0.0)  # the data's own freshness, whatever was asked
        entry.series.stale.set(0 if current_age is None else 1)
        expected = current if as_of is None else self.expected_session(now, as_of)
        age = current_age if as_of is None else self._age(entry, now, expected)
        if age is not None and age > self.policy.max_age_s:
            REFUSED.labels(ticker).inc()
            raise StaleDataError(self._too_old(ticker, entry, expected, as_of, age))
        stale = age is not None
        return Snapshot(ticker, entry.closes, self.source.name, entry.fetched_at, expected, age or 0.0,
                        stale, entry.error if stale else None)  # fmt: skip

    def expected_session(self, now: datetime, as_of: date | None) -> date | None:
        """The session data should hold at `now`: the latest settled one, or for an as-of request
        the as-of date's session if earlier. None when the calendar can say nothing (outside its
        range, 20 years back to a year ahead): no claim."""
        try:
            settled: date | None = self.calendar.last_settled_session(now)
        except ValueError:
            settled = None
        if as_of is None:
            return settled
        session = self.calendar.session_on_or_before(as_of) or as_of
        return session if settled is None else min(session, settled)

    def _age(self, entry: _Entry, now: datetime, expected: date | None) -> float | None:
        """Seconds since the first session the data lacks settled; None while it holds `expected`."""
        last = entry.last_session
        if expected is None or last is None or last >= expected:
            return None
        return max(0.0, (now - self._missing_since(entry)).total_seconds())

    @staticmethod
    def _missing_since(entry: _Entry) -> datetime:
        """When the first session after the data settled (`valid_until`); past the calendar's range,
        the midnight (UTC) after the data's last day, the earliest a next close could exist."""
        if entry.valid_until is not None:
            return entry.valid_until
        return datetime.combine(entry.closes.last + timedelta(days=1), datetime.min.time(), UTC)

    def _too_old(
        self, ticker: str, entry: _Entry, expected: date | None, as_of: date | None, age: float
    ) -> str:
        reach = "the as-of session" if as_of is not None else "the latest settled session"
        source = (f"{self.source.name} is failing: {entry.error}" if entry.error else
                  f"{self.source.name} answers data through {entry.last_session}")  # fmt: skip
        return (
            f"market data for {ticker} does not reach {reach}, {expected}: it ends at {entry.last_session}, "
            f"and the session after it settled at {self._missing_since(entry):%Y-%m-%dT%H:%M:%SZ}, "
            f"{age:.0f} s ago, over the bound of {self.policy.max_age_s:g} s (--max-age-s); {source}"
        )

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
            return
        entry.closes, entry.fetched_at, entry.attempted_at, entry.error = closes, self.clock(), now, None
        entry.valid_until = self.calendar.settled_close_after(closes.last)
        FETCHES.labels(ticker, "success").inc()
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
