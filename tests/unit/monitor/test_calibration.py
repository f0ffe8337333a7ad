"""The monitor keeps each model's online calibration state current (monitor/calibration.py): created
for a new version, moved by every newly realized session in order, stored when it changed, read back
after a restart (nothing lost, nothing counted twice), and replayed for the realized interval gauges."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from prometheus_client import REGISTRY

from bundle import OnnxForecaster, load_bundle
from bundle.online import History, initial_state, load, update
from bundle.replay import replay
from monitor.__main__ import Monitor
from monitor.calibration import Tracker, history_of, identity_of, replayed_bands, served_points
from monitor.realized import realized
from monitor.settings import MonitorSettings
from monitor.state_file import FileStore
from tests.tiny_bundle import normal_distribution, tiny_bundle, write_naive_bundle
from training.scores import winkler

NOW = datetime(2021, 6, 1, 22, tzinfo=UTC)


def frame(n: int = 700, seed: int = 5) -> pd.DataFrame:
    """Business-day OHLCV of a random walk whose volatility triples for its last 60 sessions."""
    rng = np.random.default_rng(seed)
    vol = np.where(np.arange(n) < n - 60, 0.01, 0.03)
    gap, day = rng.standard_normal(n) * vol * 0.4, rng.standard_normal(n) * vol * 0.9
    close = 20.0 * np.exp(np.cumsum(gap + day))
    open_ = close * np.exp(-day)
    high = np.maximum(open_, close) * np.exp(np.abs(rng.standard_normal(n)) * vol * 0.5)
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.standard_normal(n)) * vol * 0.5)
    dates = pd.bdate_range("2018-01-01", periods=n)
    return pd.DataFrame(
        {"date": dates, "close": close, "volume": 1e6, "open": open_, "high": high, "low": low}
    )


FRAME = frame()


@pytest.fixture(scope="module")
def forecaster(tmp_path_factory):
    path = tmp_path_factory.mktemp("naive") / "bundle"
    write_naive_bundle(path)
    return OnnxForecaster(load_bundle(path))


def head(n: int) -> History:
    return history_of(FRAME.iloc[:n])


def test_the_history_keeps_the_range_columns_and_a_closes_only_source_works():
    full, closes_only = head(100), history_of(FRAME[["date", "close", "volume"]])
    assert full.high is not None and np.array_equal(full.high, FRAME["high"].to_numpy()[:100])
    assert closes_only.open is None and len(closes_only) == len(FRAME)
    assert full.dates[0] == date(2018, 1, 1)


def test_served_points_are_the_bundles_forecasts_from_the_window_before(forecaster):
    closes = FRAME["close"].to_numpy()
    points = served_points(forecaster, closes, 600)
    assert np.isnan(points[:600]).all()
    assert np.array_equal(points[600:], closes[599:-1])  # the naive bundle: yesterday's close


def test_a_new_version_starts_a_state_and_later_sessions_move_it_in_order(forecaster, tmp_path):
    tracker = Tracker(FileStore(tmp_path), "m")
    identity = identity_of("m", "3", forecaster)
    first = tracker.advance(identity, head(650), forecaster, NOW)
    floor = forecaster.bundle.metadata.distribution.sigma_floor
    naive = np.r_[np.nan, FRAME["close"].to_numpy()[:649]]
    expected = initial_state(identity, head(650), naive, window=60, sigma_floor=floor, now=NOW)
    assert first == expected and tracker.store_if_changed()
    later = NOW + timedelta(days=3)
    moved = tracker.advance(identity, head(653), forecaster, later)
    by_hand = first
    for i in range(650, 653):
        by_hand = update(by_hand, head(653).session(i), float(FRAME["close"].iloc[i - 1]), now=later)
    assert moved == by_hand and moved.as_of == FRAME["date"].iloc[652].date()
    assert tracker.store_if_changed() and load(tmp_path / "m.json") == moved
    assert tracker.advance(identity, head(653), forecaster, later + timedelta(hours=1)) is moved
    assert not tracker.store_if_changed()  # nothing new: nothing written


def test_a_restart_continues_from_the_stored_state_and_counts_nothing_twice(forecaster, tmp_path):
    identity = identity_of("m", "3", forecaster)
    uninterrupted = Tracker(FileStore(tmp_path / "a"), "m")
    for n in (650, 660, 670):
        uninterrupted.advance(identity, head(n), forecaster, NOW)
    restarted = Tracker(FileStore(tmp_path / "b"), "m")
    restarted.advance(identity, head(650), forecaster, NOW)
    restarted.advance(identity, head(660), forecaster, NOW)
    assert restarted.store_if_changed()
    after = Tracker(FileStore(tmp_path / "b"), "m")  # a new process: reads it back
    assert after.advance(identity, head(660), forecaster, NOW) == restarted.state
    assert not after.store_if_changed()  # read back, unchanged: not written again
    assert after.advance(identity, head(670), forecaster, NOW) == uninterrupted.state


def test_another_version_or_revised_closes_start_over_and_a_lagging_source_changes_nothing(
    forecaster, tmp_path
):
    tracker = Tracker(FileStore(tmp_path), "m")
    v3, v4 = identity_of("m", "3", forecaster), identity_of("m", "4", forecaster)
    state = tracker.advance(v3, head(650), forecaster, NOW)
    assert tracker.advance(v3, head(640), forecaster, NOW) is state  # source behind the state
    new = tracker.advance(v4, head(650), forecaster, NOW)
    assert new.identity == v4 and new.as_of == state.as_of and new != state
    revised = FRAME.iloc[:651].copy()
    revised.loc[649, "close"] *= 1.01  # the as-of close as published now differs from the one counted
    again = tracker.advance(v4, history_of(revised), forecaster, NOW)
    assert again.as_of == revised["date"].iloc[650].date()
    assert again.recent_closes[-2] == pytest.approx(revised["close"].iloc[649])


def test_the_realized_interval_gauges_judge_the_replayed_online_bands(forecaster):
    hist = head(700)
    identity = identity_of("m", "3", forecaster)
    bands = replayed_bands(identity, hist, forecaster, 120)
    points = np.r_[np.nan, hist.close[:-1]]
    by_replay = replay(identity, hist, points, 580, window=60,
                       sigma_floor=forecaster.bundle.metadata.distribution.sigma_floor)  # fmt: skip
    for c in (0.8, 0.95):
        np.testing.assert_array_equal(bands[c][0], by_replay.bounds(points[580:], c)[0])
    got = realized(hist.close, hist.dates, forecaster, 20, 120, bands)
    y = hist.close[580:]
    lo, hi = bands[0.8]
    assert got.calibration == "online"
    assert got.coverage[0.8] == np.mean((y >= lo) & (y <= hi))
    assert got.winkler[0.8] == winkler(y, lo, hi, 0.8)
    static = realized(hist.close, hist.dates, forecaster, 20, 120)
    assert static.calibration == "bundle" and static.coverage[0.95] != got.coverage[0.95]
    assert replayed_bands(identity, head(200), forecaster, 120) is None  # too few sessions before


def test_the_monitor_stores_the_state_and_exports_its_gauges(forecaster, tmp_path):
    csv = tmp_path / "closes.csv"
    FRAME.assign(date=FRAME["date"].dt.strftime("%Y-%m-%d")).to_csv(csv, index=False)
    settings = MonitorSettings(model_source=str(forecaster.bundle.path), model_name="cal", source="csv",
                               csv=csv, calibration_dir=tmp_path / "states")  # fmt: skip
    monitor = Monitor(settings)
    assert monitor.run_once()
    state = load(tmp_path / "states" / "cal.json")
    version = monitor.served[0]
    assert state.identity == identity_of("cal", version, forecaster)
    assert state.as_of == FRAME["date"].iloc[-1].date() and len(state.scores) == 250
    labels = {"model": "cal", "version": version}

    def sample(name, **extra):
        return REGISTRY.get_sample_value(name, {**labels, **extra})

    assert sample("forecaster_realized_interval_online") == 1
    assert sample("forecaster_monitor_calibration_scores") == 250
    assert sample("forecaster_monitor_calibration_next_sigma") == state.next_sigma
    assert sample("forecaster_monitor_calibration_updated_timestamp_seconds") == state.updated_at.timestamp()
    runs = {"model": "cal", "result": "success"}
    assert REGISTRY.get_sample_value("forecaster_monitor_calibration_runs_total", runs) == 1
    written = (tmp_path / "states" / "cal.json").stat().st_mtime_ns
    assert monitor.run_once()  # the same closes again: the state stands, nothing is rewritten
    assert (tmp_path / "states" / "cal.json").stat().st_mtime_ns == written


def test_an_invalid_stored_state_is_replaced(forecaster, tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"schema_version": 1}))
    tracker = Tracker(FileStore(tmp_path), "m")
    state = tracker.advance(identity_of("m", "3", forecaster), head(650), forecaster, NOW)
    assert tracker.store_if_changed() and load(tmp_path / "m.json") == state


def test_the_state_scores_the_points_the_bundle_serves_not_naive(tmp_path):
    """A bundle whose point is not naive: the state's scores are |log(close / point)| of its points."""
    bundle = tiny_bundle(tmp_path / "b", weight=0.5, bias=0.1, window=60, intervals=((0.8, 0.1), (0.95, 0.2)),
                         distribution=normal_distribution(), point_weight=1.0)  # fmt: skip
    trend = OnnxForecaster(bundle)
    tracker = Tracker(FileStore(tmp_path / "s"), "m")
    identity = identity_of("m", "3", trend)
    state = tracker.advance(identity, head(650), trend, NOW)
    closes = FRAME["close"].to_numpy()[:650]
    points = np.full(650, np.nan)
    points[400:] = trend.predict(np.lib.stride_tricks.sliding_window_view(closes, 60)[340:-1])
    assert not np.allclose(points[400:], closes[399:-1])  # not naive
    floor = normal_distribution().sigma_floor
    assert state == initial_state(identity, head(650), points, window=60, sigma_floor=floor, now=NOW)


def test_a_close_revised_on_the_as_of_session_starts_over(forecaster, tmp_path, caplog):
    tracker = Tracker(FileStore(tmp_path), "m")
    identity = identity_of("m", "3", forecaster)
    with caplog.at_level("INFO", logger="monitor.calibration"):
        state = tracker.advance(identity, head(650), forecaster, NOW)
        revised = FRAME.iloc[:650].copy()
        revised.loc[649, "close"] *= 1.02
        again = tracker.advance(identity, history_of(revised), forecaster, NOW)
    assert again.as_of == state.as_of and again.recent_closes[-1] == pytest.approx(revised["close"].iloc[649])
    assert [r.getMessage().split(" as of")[0] for r in caplog.records] == [
        "m: online calibration state started for version 3"
    ] * 2


def test_the_replayed_bands_need_a_servable_state_before_the_window(forecaster):
    identity = identity_of("m", "3", forecaster)
    # 120 judged sessions after the window of 60 and 100 scored sessions: the first servable start.
    assert replayed_bands(identity, head(120 + 60 + 1 + 100), forecaster, 120) is not None
    assert replayed_bands(identity, head(120 + 60 + 100), forecaster, 120) is None
