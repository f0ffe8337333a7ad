"""The market-data cache against B3's real calendar, a clock the test moves and a source that fails on cue.

Freshness is the calendar's: data is current while it holds the latest settled session (or the as-of
session asked for); its age counts from the moment the first session it lacks settled, whatever the
source answers (B3 closes at 21:00 UTC in June; a close settles 30 minutes later)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from marketdata.cache import CachePolicy, MarketData, StaleDataError
from marketdata.calendar import SessionCalendar
from marketdata.errors import DataError
from marketdata.metrics import AGE, REFUSED, STALE
from tests.clock import Clock

B3 = SessionCalendar("BVMF")
POLICY = CachePolicy(retries=3, backoff_s=0.5, refetch_interval_s=300, max_age_s=2 * 86400, min_rows=2)


def b3_frame(through: str, sessions: int = 30) -> pd.DataFrame:
    days = B3.calendar.sessions_in_range("2024-03-01", through)[-sessions:]
    closes = 38.0 * np.exp(0.01 * np.sin(np.arange(len(days))))
    return pd.DataFrame({"date": days.tz_localize(None) if days.tz else days, "close": closes,
                         "volume": np.full(len(days), 1e6)})  # fmt: skip


class FlakySource:
    """A real source whose answers the test sets: a frame, or an exception per attempt."""

    name = "flaky"

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame, self.failures, self.calls = frame, [], 0

    def fetch(self, ticker: str) -> pd.DataFrame:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return self.frame.copy()


def market(source, clock, policy=POLICY, sleeps=None):
    return MarketData(source, B3, policy, clock=clock, sleep=(sleeps if sleeps is not None else []).append)


def at(text: str) -> Clock:
    return Clock(datetime.fromisoformat(text).replace(tzinfo=UTC))


def test_calendar_knows_b3_sessions_and_the_settled_close():
    assert B3.last_settled_session(datetime(2024, 6, 4, 21, 29, tzinfo=UTC)) == date(2024, 6, 3)
    assert B3.last_settled_session(datetime(2024, 6, 4, 21, 30, tzinfo=UTC)) == date(2024, 6, 4)
    # Corpus Christi (30 May 2024) is no B3 session: the latest settled one is the day before
    assert B3.is_session(date(2024, 5, 30)) is False
    assert B3.last_settled_session(datetime(2024, 5, 30, 23, 0, tzinfo=UTC)) == date(2024, 5, 29)
    # a weekend: Friday's close
    assert B3.last_settled_session(datetime(2024, 6, 9, 12, 0, tzinfo=UTC)) == date(2024, 6, 7)


def test_one_fetch_per_session_then_a_refresh_after_the_next_close():
    source, clock = FlakySource(b3_frame("2024-06-04")), at("2024-06-04T22:00")
    data = market(source, clock)
    assert data.cached("PETR4.SA") is None  # nothing yet: a fetch is due
    first = data.get("PETR4.SA")
    assert (source.calls, first.last_session, first.stale) == (1, date(2024, 6, 4), False)
    clock.advance(hours=20)  # 5 June 18:00 UTC: the session is open, its close is not in
    for _ in range(5):
        assert data.get("PETR4.SA").last_session == date(2024, 6, 4)
    assert data.cached("PETR4.SA") is not None and source.calls == 1
    source.frame = b3_frame("2024-06-05")
    clock.advance(hours=3, minutes=31)  # 5 June 21:31 UTC: the close has settled
    assert data.cached("PETR4.SA") is None
    assert data.get("PETR4.SA").last_session == date(2024, 6, 5) and source.calls == 2


def test_a_holiday_needs_no_fetch():
    source, clock = FlakySource(b3_frame("2024-05-29")), at("2024-05-29T22:00")
    data = market(source, clock)
    data.get("PETR4.SA")
    clock.advance(days=1)  # Corpus Christi evening: no new close exists
    assert data.cached("PETR4.SA") is not None and source.calls == 1


def test_source_down_serves_stale_with_age_then_refuses_past_the_bound():
    source, clock, sleeps = FlakySource(b3_frame("2024-06-04")), at("2024-06-04T22:00"), []
    data = market(source, clock, sleeps=sleeps)
    data.get("PETR4.SA")
    source.failures = [ConnectionError("yahoo unreachable")] * 10
    clock.advance(days=1)  # 5 June 22:00: its close settled at 21:30 and is due
    snap = data.get("PETR4.SA")
    assert source.calls == 1 + POLICY.retries and sleeps == [0.5, 1.0]  # bounded, exponential
    assert snap.stale and snap.last_session == date(2024, 6, 4) and snap.expected == date(2024, 6, 5)
    assert snap.age_s == pytest.approx(1800)  # since 5 June 21:30, not since the fetch
    assert "yahoo unreachable" in snap.error
    clock.advance(seconds=60)  # within the refetch interval: no new attempt, still stale
    assert data.get("PETR4.SA").stale and source.calls == 1 + POLICY.retries
    missing_since = datetime(2024, 6, 5, 21, 30, tzinfo=UTC)
    source.failures = [ConnectionError("still down")] * 100
    clock.now = missing_since + timedelta(seconds=POLICY.max_age_s - 1)
    assert data.get("PETR4.SA").age_s == pytest.approx(POLICY.max_age_s - 1)
    clock.now = missing_since + timedelta(seconds=POLICY.max_age_s + 1)
    with pytest.raises(StaleDataError, match=r"over the bound of 172800 s.*still down"):
        data.get("PETR4.SA")


def test_the_age_counts_from_the_first_missing_close_not_from_the_fetch():
    """A source that answers but lags is stale at once (no error to report), and refused past the bound."""
    source, clock = FlakySource(b3_frame("2024-06-04")), at("2024-06-05T21:35")  # 5 min after 5 June settled
    data = market(source, clock, policy=CachePolicy(retries=1, refetch_interval_s=60, max_age_s=600))
    snap = data.get("PETR4.SA")  # fetched just now, through 4 June: the source lags one session
    assert (snap.stale, snap.error, snap.age_s) == (True, None, pytest.approx(300))
    clock.advance(seconds=299)
    assert data.get("PETR4.SA").age_s == pytest.approx(599)
    clock.advance(seconds=2)
    with pytest.raises(StaleDataError) as refused:
        data.get("PETR4.SA")
    assert str(refused.value) == (
        "market data for PETR4.SA does not reach the latest settled session, 2024-06-05: it ends at "
        "2024-06-04, and the session after it settled at 2024-06-05T21:30:00Z, 601 s ago, over the bound "
        "of 600 s (--max-age-s); flaky answers data through 2024-06-04"
    )
    source.frame = b3_frame("2024-06-05")  # caught up: current again, the stale flag cleared
    clock.advance(seconds=60)
    snap = data.get("PETR4.SA")
    assert (snap.stale, snap.age_s, snap.error, snap.expected) == (False, 0.0, None, date(2024, 6, 5))


def test_a_source_answering_two_year_old_rows_is_refused_not_served_as_fresh():
    ticker = "OLD.SA"  # its own gauges
    source, clock = FlakySource(b3_frame("2024-06-04")), at("2026-06-05T22:00")
    data = market(source, clock)
    refused = r"does not reach the latest settled session, 2026-06-05: it ends at 2024-06-04.*flaky answers"
    with pytest.raises(StaleDataError, match=refused):
        data.get(ticker)
    two_years = (clock.now - datetime(2024, 6, 5, 21, 30, tzinfo=UTC)).total_seconds()
    assert STALE.labels(ticker)._value.get() == 1 and AGE.labels(ticker)._value.get() == two_years
    assert REFUSED.labels(ticker)._value.get() == 1
    # a date the rows reach is answered from them, current for that date; the gauges stay the data's own
    snap = data.get(ticker, as_of=date(2024, 6, 3))
    assert (snap.stale, snap.age_s, snap.expected) == (False, 0.0, date(2024, 6, 3))
    assert STALE.labels(ticker)._value.get() == 1
    with pytest.raises(StaleDataError, match=r"does not reach the as-of session, 2024-06-05"):
        data.get(ticker, as_of=date(2024, 6, 5))


def test_data_holding_the_latest_settled_session_is_current_over_a_weekend_whatever_the_source():
    ticker = "WKND.SA"
    source, clock = FlakySource(b3_frame("2024-06-07")), at("2024-06-07T22:00")  # Friday's close
    data = market(source, clock)
    data.get(ticker)
    source.failures = [OSError("down")] * 100
    clock.now = datetime(2024, 6, 10, 12, 0, tzinfo=UTC)  # Monday morning: no newer close exists
    snap = data.get(ticker)
    assert (snap.stale, snap.age_s, snap.expected, source.calls) == (False, 0.0, date(2024, 6, 7), 1)
    assert STALE.labels(ticker)._value.get() == 0 and AGE.labels(ticker)._value.get() == 0
    clock.now = datetime(2024, 6, 10, 21, 31, tzinfo=UTC)  # Monday's close settled a minute ago
    snap = data.get(ticker)
    assert (snap.stale, snap.age_s, snap.expected) == (True, 60.0, date(2024, 6, 10)) and "down" in snap.error
    assert STALE.labels(ticker)._value.get() == 1 and AGE.labels(ticker)._value.get() == 60.0


@pytest.mark.parametrize(
    ("now", "as_of", "expected", "age_s"),
    [
        ("2024-06-06T22:00", "2024-06-04", "2024-06-04", 0.0),  # the rows reach it: current
        ("2024-06-06T22:00", "2024-06-05", "2024-06-05", 88200.0),  # lacks it: since 5 June 21:30
        ("2024-06-06T22:00", "2024-06-08", "2024-06-06", 88200.0),  # a Saturday: the latest settled
        ("2024-06-05T18:00", "2024-06-05", "2024-06-04", 0.0),  # today, still open: yesterday's close
    ],
)
def test_an_as_of_request_is_judged_against_its_own_session(now, as_of, expected, age_s):
    source = FlakySource(b3_frame("2024-06-04"))
    data = market(source, at(now), policy=CachePolicy(retries=1, max_age_s=10 * 86400))
    snap = data.get("PETR4.SA", as_of=date.fromisoformat(as_of))
    assert (snap.expected, snap.age_s, snap.stale) == (date.fromisoformat(expected), age_s, age_s > 0)


def test_retries_recover_within_one_refresh():
    source, clock, sleeps = FlakySource(b3_frame("2024-06-04")), at("2024-06-04T22:00"), []
    source.failures = [TimeoutError("slow"), ConnectionError("reset")]
    snap = market(source, clock, sleeps=sleeps).get("PETR4.SA")
    assert (source.calls, sleeps, snap.stale) == (3, [0.5, 1.0], False)


def test_no_data_at_all_is_refused_with_the_reason():
    source = FlakySource(b3_frame("2024-06-04"))
    source.failures = [ConnectionError("dns")] * 3
    with pytest.raises(StaleDataError, match=r"no market data for PETR4\.SA from flaky: ConnectionError"):
        market(source, at("2024-06-04T22:00")).get("PETR4.SA")


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda f: f.assign(close=f["close"].where(f.index != 5, -1.0)), "non-positive close"),
        (lambda f: f.assign(close=f["close"].where(f.index != 5, f["close"] * 50)), "unit or decimal"),
        (lambda f: f.iloc[::-1].reset_index(drop=True), "not ascending"),
        (lambda f: f.iloc[:1], "too few rows"),
    ],
)
def test_invalid_upstream_data_is_a_source_error_never_served(spoil, reason):
    good = b3_frame("2024-06-04")
    source, clock = FlakySource(good), at("2024-06-04T22:00")
    data = market(source, clock, policy=CachePolicy(retries=1))
    data.get("PETR4.SA")
    source.frame = spoil(b3_frame("2024-06-05"))
    clock.advance(days=1)
    snap = data.get("PETR4.SA")
    assert snap.stale and reason in snap.error and snap.last_session == date(2024, 6, 4)


def test_zero_volume_sessions_are_dropped_as_in_training():
    frame = b3_frame("2024-06-04")
    frame.loc[len(frame) - 1, "volume"] = 0.0  # a frozen last row: not a session's close
    snap = market(FlakySource(frame), at("2024-06-04T22:00")).get("PETR4.SA")
    assert snap.last_session == date(2024, 6, 3)


def test_a_past_date_the_cache_covers_needs_no_refresh_and_is_never_stale():
    source, clock = FlakySource(b3_frame("2024-06-04")), at("2024-06-04T22:00")
    data = market(source, clock)
    data.get("PETR4.SA")
    source.failures = [OSError("down")] * 100
    clock.advance(days=30)  # far past the bound, the source down
    snap = data.get("PETR4.SA", as_of=date(2024, 6, 3))
    assert not snap.stale and snap.age_s == 0 and source.calls == 1


def test_a_lagging_source_is_asked_again_only_every_refetch_interval():
    source, clock = FlakySource(b3_frame("2024-06-04")), at("2024-06-06T22:00")  # two closes behind
    data = market(source, clock, policy=CachePolicy(max_age_s=10 * 86400))
    data.get("PETR4.SA")
    clock.advance(seconds=299)
    data.get("PETR4.SA")
    assert source.calls == 1
    clock.advance(seconds=1)
    data.get("PETR4.SA")
    assert source.calls == 2


def test_a_data_error_is_a_value_error_shared_with_training():
    from training.errors import DataError as TrainingDataError

    assert TrainingDataError is DataError and issubclass(DataError, ValueError)


def test_a_session_still_open_is_not_cached_as_a_close():
    """During a session Yahoo's daily history ends with the live price: not a close."""
    source, clock = FlakySource(b3_frame("2024-06-05")), at("2024-06-05T18:00")  # B3 open until 21:00 UTC
    snap = market(source, clock).get("PETR4.SA")
    assert snap.last_session == date(2024, 6, 4)
