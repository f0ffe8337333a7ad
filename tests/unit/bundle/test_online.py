"""The online interval state: its update, its sane limits, its serialization, and what it serves."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from pydantic import ValidationError

from bundle.distribution import LEVELS, ewma_sigma
from bundle.har import fit_har, har_variance, range_variance
from bundle.online import (
    ANCHOR,
    MIN_SCORES,
    History,
    ModelIdentity,
    OnlineState,
    Session,
    initial_state,
    load,
    save,
    serving,
    update,
    usable,
)
from bundle.replay import replay

WINDOW = 60
IDENTITY = ModelIdentity(model_name="petr4-sa-forecaster", model_version="3", bundle_sha256="ab" * 32)


def sessions(n: int, vol: np.ndarray | float = 0.01, seed: int = 0) -> History:
    """Daily OHLC with a random-walk close: `vol` per session (array: a regime per session)."""
    rng = np.random.default_rng(seed)
    sd = np.broadcast_to(np.asarray(vol, dtype=np.float64), (n,))
    gap = rng.standard_normal(n) * sd * 0.4
    day = rng.standard_normal(n) * sd * math.sqrt(1 - 0.16)
    close = 50.0 * np.exp(np.cumsum(gap + day))
    open_ = close * np.exp(-day)
    spread = np.abs(rng.standard_normal(n)) * sd * 0.6
    high = np.maximum(open_, close) * np.exp(spread)
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.standard_normal(n)) * sd * 0.6)
    dates = [date(2010, 1, 1) + timedelta(days=i) for i in range(n)]
    return History(dates, close, open_, high, low)


def naive_points(h: History) -> np.ndarray:
    return np.r_[np.nan, h.close[:-1]]


def state_for(h: History, **kw) -> OnlineState:
    return initial_state(IDENTITY, h, naive_points(h), window=WINDOW, sigma_floor=1e-4, **kw)


def clustered_vol(n: int, seed: int) -> np.ndarray:
    """1% a day on average, clustering as real volatility does (log-variance AR(1), 0.97)."""
    rng = np.random.default_rng(seed)
    log_var = np.zeros(n)
    for t in range(1, n):
        log_var[t] = 0.97 * log_var[t - 1] + 0.25 * rng.standard_normal()
    return 0.01 * np.exp(log_var / 2)


def test_the_state_follows_a_volatility_jump_within_a_few_sessions():
    """Clustering volatility around 1% a day for 900 sessions, then 3%: within 10 sessions the
    served sigma is above 2%, and over the sessions after that the 80% band covers about 80%."""
    n_before, n_after = 900, 200
    vol = clustered_vol(n_before + n_after, seed=4)
    vol[n_before:] = 0.03
    h = sessions(n_before + n_after, vol, seed=4)
    points = naive_points(h)
    result = replay(IDENTITY, h, points, n_before, window=WINDOW, sigma_floor=1e-4)
    assert result.sigma[0] < 0.015
    assert result.sigma[10] > 0.02
    lo, hi = result.bounds(points[n_before:], 0.8)
    actual = h.close[n_before:]
    covered = np.mean((actual[20:] >= lo[20:]) & (actual[20:] <= hi[20:]))
    assert 0.72 <= covered <= 0.88
    # ACI's levels moved with the misses of the first days: the served table is another one.
    assert result.distributions[0].score_quantiles != result.distributions[-1].score_quantiles


def test_aci_widens_a_level_after_misses_and_narrows_it_after_hits():
    h = sessions(600, seed=1)
    state = state_for(h)
    i80 = LEVELS.index(0.8)
    last = h.session(len(h) - 1)
    miss = Session(last.date + timedelta(days=1), last.close * math.exp(20 * state.next_sigma))
    after_miss = update(state, miss, point=last.close)
    assert after_miss.alphas[i80] < state.alphas[i80]  # less miscoverage allowed: wider
    hit = Session(last.date + timedelta(days=1), last.close)
    assert update(state, hit, point=last.close).alphas[i80] > state.alphas[i80]


def test_an_update_moves_every_field_by_one_session_and_refuses_the_past():
    h = sessions(600, seed=2)
    state = state_for(h)
    last = h.session(len(h) - 1)
    new = Session(
        last.date + timedelta(days=3), last.close * 1.01, last.close, last.close * 1.02, last.close * 0.99
    )
    moved = update(state, new, point=last.close, now=datetime(2030, 1, 1, tzinfo=UTC))
    assert moved.as_of == new.date and moved.recent_closes[-1] == new.close
    assert moved.recent_closes[:-1] == state.recent_closes[1:]
    assert len(moved.scores) == len(state.scores) == 250
    assert moved.scores[-1] == pytest.approx(math.log(1.01) / state.next_sigma)
    with pytest.raises(ValueError, match="not after the state's as_of"):
        update(moved, new, point=last.close)
    with pytest.raises(ValueError, match="positive and finite"):
        update(state, Session(new.date, float("nan")), point=last.close)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"alphas": (0.5,) * 3}, "one alpha per level"),
        ({"alphas": (2.0,) * len(LEVELS)}, "alphas must lie"),
        ({"scores": (1.0, -1.0)}, "scores must be finite"),
        ({"scores": (1.0, float("inf"))}, "scores must be finite"),
        ({"close_har": (0.0, 0.1, 0.1, 0.1, 0.5)}, "intercept must be > 0"),
        ({"range_har": (1e-5, 0.1)}, "needs 5 coefficients"),
        ({"close_scale": 40.0}, "close_scale"),
        ({"next_sigma": 3.0}, "next_sigma"),
        ({"next_sigma": 1e-9}, "next_sigma"),
        ({"recent_closes": (1.0,) * 10}, "recent_closes"),
        ({"updated_at": datetime(2000, 1, 1, tzinfo=UTC)}, "before as_of"),
        ({"updated_at": datetime(2030, 1, 1)}, "time zone"),
        ({"schema_version": 2}, "schema_version"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_a_state_outside_sane_limits_is_refused(change, message):
    data = state_for(sessions(500, seed=3)).model_dump()
    with pytest.raises(ValidationError, match=message):
        OnlineState.model_validate({**data, **change})


def test_serialization_round_trip_serves_the_same_bands(tmp_path):
    h = sessions(600, seed=5)
    state = state_for(h)
    path = tmp_path / "state.json"
    save(state, path)
    loaded = load(path)
    assert loaded == state
    assert 4_000 < path.stat().st_size < 20_000  # small enough for a ConfigMap
    closes = h.close[-WINDOW:][None, :]
    a, b = serving(state), serving(loaded)
    np.testing.assert_array_equal(
        a.bounds(closes[:, -1:], a.sigma(closes), 0.8), b.bounds(closes[:, -1:], b.sigma(closes), 0.8)
    )
    path.write_text(path.read_text().replace('"close_scale": ', '"close_scale": 1e9, "x": '))
    with pytest.raises(ValueError):
        load(path)


def test_usable_only_for_its_own_model_version_bundle_and_while_fresh():
    state = state_for(sessions(500, seed=6))
    now = state.updated_at + timedelta(hours=12)
    assert usable(state, IDENTITY, now) is None
    assert usable(state, IDENTITY.model_copy(update={"model_version": "4"}), now) == "other_version"
    assert usable(state, IDENTITY.model_copy(update={"model_name": "vale3"}), now) == "other_model"
    assert usable(state, IDENTITY.model_copy(update={"bundle_sha256": "cd" * 32}), now) == "other_bundle"
    assert usable(state, IDENTITY, state.updated_at + timedelta(days=5)) == "stale"
    assert usable(state, IDENTITY, state.updated_at - timedelta(days=1)) == "future"
    young = state.model_copy(update={"scores": state.scores[: MIN_SCORES - 1]})
    assert usable(young, IDENTITY, now) == "too_few_scores"
    with pytest.raises(ValueError, match="too few to serve"):
        serving(young)


def test_the_latest_window_gets_the_range_scale_any_other_its_own_closes():
    h = sessions(700, seed=7)
    state = state_for(h)
    dist = serving(state)
    latest = np.asarray(state.recent_closes)[None, :]
    older = h.close[-WINDOW - 10 : -10][None, :]
    edited = latest.copy()
    edited[0, -ANCHOR] *= 1.001  # same last close, another window
    sigma = dist.sigma(np.vstack([latest, older, edited]))
    assert sigma[0] == pytest.approx(state.next_sigma)
    r2 = np.diff(np.log(np.vstack([older, edited])), axis=1) ** 2
    expected = np.sqrt(har_variance(state.close_har, r2)) * state.close_scale
    np.testing.assert_allclose(sigma[1:], expected)


def test_the_ewma_term_is_the_bundles_ewma():
    closes = 30 * np.exp(np.cumsum(np.random.default_rng(8).normal(0, 0.02, (4, WINDOW)), axis=1))
    r2 = np.diff(np.log(closes), axis=1) ** 2
    np.testing.assert_allclose(np.sqrt(har_variance((1e-300, 0, 0, 0, 1.0), r2)), ewma_sigma(closes))


def test_the_har_fit_keeps_slopes_non_negative_and_finds_a_persistent_variance():
    rng = np.random.default_rng(9)
    n = 3000
    log_var = np.zeros(n)
    for t in range(1, n):
        log_var[t] = 0.97 * log_var[t - 1] + 0.2 * rng.standard_normal()
    r2 = (0.01 * np.exp(log_var / 2) * rng.standard_normal(n)) ** 2
    windows = np.lib.stride_tricks.sliding_window_view(r2, 59)[:-1]
    coef = fit_har(windows, r2[59:])
    assert all(c >= 0 for c in coef) and coef[0] > 0
    assert sum(coef[1:]) > 0.5  # most of the forecast comes from the past, not the intercept


def test_range_variance_falls_back_to_the_squared_return_without_a_valid_range():
    prev, close = np.array([100.0, 100.0, 100.0]), np.array([101.0, 101.0, 101.0])
    v = range_variance(np.array([100.5, np.nan, 100.5]), np.array([102.0, np.nan, 100.0]),
                       np.array([99.0, np.nan, 99.0]), close, prev)  # fmt: skip
    gk = (
        math.log(1.005) ** 2
        + 0.5 * math.log(102 / 99) ** 2
        - (2 * math.log(2) - 1) * math.log(101 / 100.5) ** 2
    )
    assert v[0] == pytest.approx(gk)
    assert v[1] == v[2] == pytest.approx(math.log(1.01) ** 2)  # no range; high below the close


def test_the_replay_never_looks_ahead():
    """Two histories equal up to session k and different after: every band served up to k is the
    same (a session's band uses only sessions before it)."""
    h = sessions(800, seed=10)
    k, start = 700, 650
    close = h.close.copy()
    close[k + 1 :] *= np.exp(np.cumsum(np.full(len(close) - k - 1, 0.05)))
    other = History(h.dates, close, h.open, h.high * np.r_[np.ones(k + 1), np.full(99, 2.0)], h.low)
    a = replay(IDENTITY, h, naive_points(h), start, window=WINDOW, sigma_floor=1e-4)
    b = replay(IDENTITY, other, np.r_[np.nan, close[:-1]], start, window=WINDOW, sigma_floor=1e-4)
    same = k + 1 - start  # sessions start..k
    np.testing.assert_array_equal(a.sigma[:same], b.sigma[:same])
    assert a.distributions[:same] == b.distributions[:same]
    assert not np.array_equal(a.sigma[same + 1 :], b.sigma[same + 1 :])


def test_a_closes_only_history_serves_one_scale():
    h = sessions(600, seed=11)
    closes_only = History(h.dates, h.close)
    state = state_for(closes_only)
    assert state.close_har == state.range_har
    assert state.close_scale == pytest.approx(1.0, abs=0.05)


def test_the_runtime_serves_an_online_distribution_in_every_band_and_quantile(tmp_path):
    """`OnnxForecaster.forecast(..., distribution=serving(state))`: the bounds and every quantile
    follow the state (the v2/v1 outputs and the time-series quantiles all read these)."""
    from bundle import OnnxForecaster, write_bundle
    from bundle.distribution import calibrate
    from tests.tiny_bundle import metadata, onnx_model

    h = sessions(700, seed=12)
    state = state_for(h)
    online = serving(state)
    model = onnx_model(WINDOW - 1, 0.0, 0.0)
    static = calibrate(
        np.full(300, 0.01) * np.random.default_rng(0).standard_normal(300), np.full(300, 0.01), 1e-4
    )
    meta = metadata(model, window=WINDOW, intervals=((0.8, 0.1), (0.95, 0.2)))
    meta = meta.model_validate({**meta.model_dump(), "format_version": 2, "point_weight": 0.0,
                                "distribution": static.model_dump()})  # fmt: skip
    forecaster = OnnxForecaster(write_bundle(tmp_path / "b", meta, {"model.onnx": model}))
    closes = np.asarray(state.recent_closes)[None, :]
    served = forecaster.forecast(closes, horizon=2, distribution=online)
    bundle_only = forecaster.forecast(closes, horizon=2)
    assert served.sigma[0] == pytest.approx(state.next_sigma)
    lo, hi = online.bounds(served.mean, served.sigma, 0.8, served.widen)
    np.testing.assert_allclose(served.lower[0.8], lo)
    np.testing.assert_allclose(served.upper[0.8], hi)
    np.testing.assert_allclose(forecaster.quantile(served, 0.9), hi)  # the same object's quantile
    np.testing.assert_allclose(forecaster.quantile(served, 0.1), lo)
    assert not np.allclose(bundle_only.upper[0.8], served.upper[0.8])
    np.testing.assert_allclose(forecaster.quantile(bundle_only, 0.9), bundle_only.upper[0.8])
