"""Which session's close should be available by now: the exchange's calendar, not hand-written holidays.

Closes change once per session, so a cache is valid until the next session's close has settled
(its close plus the time the source takes to publish it), and data is current while it holds the
latest settled session (marketdata.cache measures staleness from this).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import cache, lru_cache

import pandas as pd

LOOKBACK = timedelta(days=15)  # longer than any run of holidays (B3's Carnival is 2 days)


@cache
def _calendar(name: str):
    import exchange_calendars  # ~0.5 s to build a calendar: once per process and name

    return exchange_calendars.get_calendar(name)


class SessionCalendar:
    """One exchange's sessions (BVMF is B3; XNYS for the packaged AAPL sample)."""

    def __init__(self, name: str, settle: timedelta = timedelta(minutes=30)) -> None:
        self.name, self.settle = name, settle
        self.calendar = _calendar(name)
        # Requests ask about a handful of dates: exchange_calendars' ~100 µs lookups, once each.
        self.is_session = lru_cache(maxsize=4096)(self.is_session)
        self.session_on_or_before = lru_cache(maxsize=4096)(self.session_on_or_before)
        self.next_session = lru_cache(maxsize=4096)(self.next_session)
        # (session, settled at, the next one settles at): every request asks; ~200 µs to compute
        self._latest: tuple[date, datetime, datetime] | None = None

    def last_settled_session(self, now: datetime) -> date:
        """The latest session whose close (plus `settle`) is at or before `now` (aware, any zone);
        ValueError outside the calendar's range. Reused until the next session settles."""
        latest = self._latest
        if latest is not None and latest[1] <= now < latest[2]:
            return latest[0]
        session = self._last_settled_session(now)
        following = self.settled_close_after(session)
        if following is not None:
            self._latest = (session, self.settled_at(session), following)
        return session

    def settled_at(self, session: date) -> datetime:
        """When `session`'s close has settled: its close plus `settle` (aware, UTC)."""
        return (self.calendar.session_close(pd.Timestamp(session)) + self.settle).to_pydatetime()

    def _last_settled_session(self, now: datetime) -> date:
        now = pd.Timestamp(now).tz_convert("UTC")
        sessions = self.calendar.sessions_in_range(
            max(now.normalize().tz_localize(None) - LOOKBACK, self.calendar.first_session),
            min(now.normalize().tz_localize(None), self.calendar.last_session),
        )
        for session in reversed(sessions):
            if self.calendar.session_close(session) + self.settle <= now:
                return session.date()
        raise ValueError(f"{now} is outside the {self.name} calendar's range")

    def is_session(self, day: date) -> bool | None:
        """Whether `day` is a session; None outside the calendar's range (no claim either way)."""
        stamp = pd.Timestamp(day)
        if not self.calendar.first_session <= stamp <= self.calendar.last_session:
            return None
        return bool(self.calendar.is_session(stamp))

    def session_on_or_before(self, day: date) -> date | None:
        """The latest session at or before `day`; None outside the calendar's range."""
        stamp = pd.Timestamp(day)
        if not self.calendar.first_session <= stamp <= self.calendar.last_session:
            return None
        return self.calendar.date_to_session(stamp, direction="previous").date()

    def next_session(self, day: date) -> date | None:
        """The session after `day` (the forecast's D+1); None outside the calendar's range."""
        stamp = pd.Timestamp(day)
        if not self.calendar.first_session <= stamp < self.calendar.last_session:
            return None
        return self.calendar.date_to_session(stamp + pd.Timedelta(days=1), direction="next").date()

    def settled_close_after(self, day: date) -> datetime | None:
        """When the first session after `day` will have settled (its close plus `settle`): until
        then no newer close can exist. None past the calendar's range (then: refetch by interval)."""
        following = self.next_session(day)
        return None if following is None else self.settled_at(following)

    def settled_rows(self, frame: pd.DataFrame, now: datetime) -> tuple[pd.DataFrame, int]:
        """`frame` without the rows of sessions whose close has not settled by `now` (during a
        session Yahoo's last daily row is the live price, not a close), and how many were dropped;
        outside the calendar's range, as it is (no claim)."""
        try:
            settled = self.last_settled_session(now)
        except ValueError:
            return frame, 0
        open_rows = pd.to_datetime(frame["date"], errors="coerce") > pd.Timestamp(settled)
        return frame.loc[~open_rows].reset_index(drop=True), int(open_rows.sum())
