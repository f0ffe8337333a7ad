"""The predictor serves the monitor's online calibration state (predictor/calibration.py): read at load
and on every poll, checked each time, swapped with the model as one reference, reported in every
answer (v2 parameters, v1 and time-series beside their results) and in gauges; the bundle's
calibration otherwise, saying why."""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from prometheus_client import REGISTRY

from bundle import OnnxForecaster, load_bundle
from bundle.io import metadata_sha256
from bundle.online import History, ModelIdentity, OnlineState, initial_state, save, serving
from predictor.batching import rows
from predictor.calibration import Calibrator
from predictor.loader import Entry, Loader
from tests.tiny_bundle import normal_distribution, write_naive_bundle
from tests.unit.predictor.conftest import make_model

WINDOW = 60
NAME = "tiny"  # make_model's served name: its state is <dir>/tiny.json


@pytest.fixture(scope="module")
def naive_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("naive") / "bundle"
    write_naive_bundle(path, window=WINDOW)
    return path


def history(n: int = 700, seed: int = 3) -> History:
    """Daily OHLC of a random walk whose volatility triples for its last 80 sessions."""
    rng = np.random.default_rng(seed)
    vol = np.where(np.arange(n) < n - 80, 0.01, 0.03)
    gap, day = rng.standard_normal(n) * vol * 0.4, rng.standard_normal(n) * vol * 0.9
    close = 30.0 * np.exp(np.cumsum(gap + day))
    open_ = close * np.exp(-day)
    high = np.maximum(open_, close) * np.exp(np.abs(rng.standard_normal(n)) * vol * 0.5)
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.standard_normal(n)) * vol * 0.5)
    dates = [date(2018, 1, 1) + timedelta(days=i) for i in range(n)]
    return History(dates, close, open_, high, low)


HISTORY = history()


def state_for(bundle_dir, now: datetime | None = None, **identity) -> OnlineState:
    """The monitor's state for the bundle in `bundle_dir`, computed `now` (default: now)."""
    sha = metadata_sha256(bundle_dir)
    ident = ModelIdentity(**{"model_name": NAME, "model_version": "3", "bundle_sha256": sha, **identity})
    points = np.r_[np.nan, HISTORY.close[:-1]]  # the bundle serves naive
    floor = normal_distribution().sigma_floor
    return initial_state(
        ident, HISTORY, points, window=WINDOW, sigma_floor=floor, now=now or datetime.now(UTC)
    )


@pytest.fixture
def calibrated(naive_dir, tmp_path):
    """A loaded model over the naive bundle reading tmp_path/<name>.json, no state written yet."""
    model = make_model(naive_dir, calibration_dir=tmp_path)
    assert model.try_reload()
    return model


def latest_window(state: OnlineState) -> np.ndarray:
    return np.asarray(state.recent_closes)[None, :]


def v2_body(closes: np.ndarray) -> dict:
    return {"id": "c", "inputs": [{"name": "closes", "shape": list(closes.shape), "datatype": "FP64",
                                   "data": closes.tolist()}]}  # fmt: skip


def outputs(answer: dict) -> dict[str, float]:
    return {o["name"]: o["data"][0] for o in answer["outputs"]}


def test_without_a_directory_every_answer_says_the_bundle_serves(model):
    assert model.served.calibration.parameters == {"calibration": "bundle", "calibration_reason": "disabled"}
    assert model.recheck_s == 0


def test_the_state_is_served_once_it_appears_on_every_protocol(calibrated, naive_dir, tmp_path, serve_app):
    assert calibrated.served.calibration.parameters == {
        "calibration": "bundle", "calibration_reason": "no_state",
    }  # fmt: skip
    state = state_for(naive_dir)
    save(state, tmp_path / f"{NAME}.json")
    calibrated.recalibrate()
    client, closes = serve_app(calibrated), latest_window(state)
    answer = client.post(f"/v2/models/{NAME}/infer", json=v2_body(closes)).json()
    said = {
        "calibration": "online",
        "calibration_reason": "usable",
        "calibration_state_as_of": str(state.as_of),
    }
    assert answer["parameters"] == said
    got, last = outputs(answer), closes[0, -1]
    assert got["forecast"] == last  # naive
    # The latest window gets the state's range-based sigma and the state's |z| table, by hand:
    halfwidth = serving(state).halfwidth(0.8) * state.next_sigma
    assert got["lower_80"] == pytest.approx(last * math.exp(-halfwidth), rel=1e-12)
    assert got["upper_80"] == pytest.approx(last * math.exp(halfwidth), rel=1e-12)
    bundle = OnnxForecaster(load_bundle(naive_dir)).forecast(closes)  # what was served before
    assert got["upper_80"] != pytest.approx(bundle.upper[0.8][0, 0], rel=1e-6)
    v1 = client.post(f"/v1/models/{NAME}:predict", json={"instances": closes.tolist()}).json()
    assert v1["parameters"] == said and v1["predictions"][0]["upper_95"] == got["upper_95"]
    series = {"type": "univariate_time_series", "name": "s", "series": closes[0].tolist(), "frequency": "D"}
    options = {"horizon": 1, "quantiles": [0.1, 0.975]}
    ts = client.post("/v1/timeseries/forecast", json={"model": NAME, "inputs": [series], "options": options})
    body = ts.json()
    assert ts.status_code == 200 and body["parameters"] == said
    quantiles = body["outputs"][0]["content"][0]["quantiles"]
    assert quantiles["0.1"] == [pytest.approx(got["lower_80"], rel=1e-12)]
    assert quantiles["0.975"] == [pytest.approx(got["upper_95"], rel=1e-12)]


def test_fast_path_and_kserve_route_answer_the_same_bytes_with_a_state(naive_dir, tmp_path, serve_app):
    save(state_for(naive_dir), tmp_path / f"{NAME}.json")
    fast, slow = (make_model(naive_dir, calibration_dir=tmp_path, fast_path=f) for f in (True, False))
    assert fast.try_reload() and slow.try_reload()
    body = v2_body(latest_window(fast.served.calibration.state))
    a, b = (serve_app(m).post(f"/v2/models/{NAME}/infer", json=body) for m in (fast, slow))
    assert a.content == b.content and b"online" in a.content


def test_a_stale_state_is_ignored_and_the_answer_says_why(calibrated, naive_dir, tmp_path):
    old = datetime.now(UTC) - timedelta(days=4, minutes=1)  # past the default bound of 4 days
    state = state_for(naive_dir, now=old)
    save(state, tmp_path / f"{NAME}.json")
    calibrated.recalibrate()
    assert calibrated.served.calibration.distribution is None
    assert calibrated.served.calibration.parameters == {
        "calibration": "bundle", "calibration_reason": "stale", "calibration_state_as_of": str(state.as_of),
    }  # fmt: skip


def test_the_bound_is_a_setting_and_age_is_rechecked_without_the_file_changing(naive_dir, tmp_path):
    save(state_for(naive_dir), tmp_path / f"{NAME}.json")
    model = make_model(naive_dir, calibration_dir=tmp_path, calibration_max_age_s=1.0)
    assert model.try_reload() and model.served.calibration.labels == ("online", "usable")
    time.sleep(1.1)
    model.recalibrate()
    assert model.served.calibration.labels == ("bundle", "stale")


@pytest.mark.parametrize(
    ("identity", "reason"),
    [({"model_name": "other"}, "other_model"), ({"bundle_sha256": "cd" * 32}, "other_bundle")],
)
def test_a_state_of_another_model_or_bundle_is_ignored(calibrated, naive_dir, tmp_path, identity, reason):
    save(state_for(naive_dir, **identity), tmp_path / f"{NAME}.json")
    calibrated.recalibrate()
    assert calibrated.served.calibration.labels == ("bundle", reason)


def test_a_registry_version_must_match_and_a_directory_is_tied_by_its_bundle(naive_dir, tmp_path):
    save(state_for(naive_dir, model_version="3"), tmp_path / f"{NAME}.json")
    bundle = load_bundle(naive_dir)
    assert Calibrator(NAME, tmp_path, 3600).decide(bundle, "7").labels == ("bundle", "other_version")
    assert Calibrator(NAME, tmp_path, 3600).decide(bundle, "3").labels == ("online", "usable")
    assert Calibrator(NAME, tmp_path, 3600).decide(bundle, None).labels == ("online", "usable")


def test_a_corrupt_or_insane_state_is_refused_and_a_good_one_then_served(calibrated, naive_dir, tmp_path):
    path = tmp_path / f"{NAME}.json"
    path.write_text('{"schema_version": 1, "identity": ')  # half a file
    calibrated.recalibrate()
    assert calibrated.served.calibration.labels == ("bundle", "invalid")
    insane = json.loads(state_for(naive_dir).model_dump_json())
    insane["close_scale"] = 50.0  # outside the state's sane limits
    path.write_text(json.dumps(insane))
    calibrated.recalibrate()
    assert calibrated.served.calibration.labels == ("bundle", "invalid")
    save(state_for(naive_dir), path)
    calibrated.recalibrate()
    assert calibrated.served.calibration.labels == ("online", "usable")


def test_nothing_is_rebuilt_or_swapped_while_the_file_is_unchanged(calibrated, naive_dir, tmp_path):
    save(state_for(naive_dir), tmp_path / f"{NAME}.json")
    before = calibrated.served
    calibrated.recalibrate()
    swapped = calibrated.served
    assert swapped is not before and swapped.forecaster is before.forecaster  # one reference, both
    calibrated.recalibrate()
    calibrated.recalibrate()
    assert calibrated.served is swapped and swapped.calibration.distribution is not None


def test_a_format_1_bundle_keeps_its_static_intervals(tiny_dir, naive_dir, tmp_path):
    save(state_for(naive_dir, model_name="tiny"), tmp_path / f"{NAME}.json")
    model = make_model(tiny_dir, calibration_dir=tmp_path)
    assert model.try_reload()
    assert model.served.calibration.labels == ("bundle", "format_1")


def test_gauges_say_which_calibration_serves_and_the_states_dates(calibrated, naive_dir, tmp_path):
    def gauge(source, reason):
        return REGISTRY.get_sample_value(
            "forecaster_calibration", {"model": NAME, "source": source, "reason": reason}
        )

    assert gauge("bundle", "no_state") == 1
    state = state_for(naive_dir)
    save(state, tmp_path / f"{NAME}.json")
    calibrated.recalibrate()
    assert (gauge("online", "usable"), gauge("bundle", "no_state")) == (1, 0)
    as_of = REGISTRY.get_sample_value("forecaster_calibration_state_as_of_timestamp_seconds", {"model": NAME})
    updated = REGISTRY.get_sample_value(
        "forecaster_calibration_state_updated_timestamp_seconds", {"model": NAME}
    )
    assert as_of == datetime(state.as_of.year, state.as_of.month, state.as_of.day, tzinfo=UTC).timestamp()
    assert updated == state.updated_at.timestamp()


def test_the_loader_keeps_rechecking_a_directory_model_only_with_a_calibration(naive_dir, tmp_path):
    loader = Loader(reload_interval_s=60, retry_max_s=30)
    with_state = make_model(naive_dir, calibration_dir=tmp_path, calibration_poll_s=5)
    without = make_model(naive_dir)
    for model in (with_state, without):
        loader._entries[model.name] = entry = Entry(model, due=0.0)
        assert model.try_reload()
        loader.schedule(entry)
        assert (model.name in loader._entries) is (model is with_state)
        if model is with_state:
            assert 4 < entry.due - time.monotonic() <= 5
            del loader._entries[model.name]


def test_a_batch_row_keeps_the_distribution_that_made_it(calibrated, naive_dir, tmp_path):
    save(state_for(naive_dir), tmp_path / f"{NAME}.json")
    calibrated.recalibrate()
    served = calibrated.served
    closes = np.repeat(latest_window(served.calibration.state), 3, axis=0)
    result = served.forecaster.forecast(closes, 1, served.calibration.distribution)
    row = rows(result, 1, 2)
    assert row.distribution is served.calibration.distribution
    assert served.forecaster.quantile(row, 0.1)[0, 0] == pytest.approx(row.lower[0.8][0, 0], rel=1e-12)


def test_each_change_of_what_is_served_is_logged_once(calibrated, naive_dir, tmp_path, caplog):
    path = tmp_path / f"{NAME}.json"
    with caplog.at_level("INFO", logger="predictor.calibration"):
        save(state_for(naive_dir), path)
        calibrated.recalibrate()
        calibrated.recalibrate()  # unchanged: no second line
        save(state_for(naive_dir, now=datetime.now(UTC) - timedelta(days=5)), path)
        calibrated.recalibrate()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"{NAME}: serving the online calibration (state as of ")
    assert lines[1].startswith(f"{NAME}: serving the bundle's calibration: stale (state as of ")


def test_an_unreadable_or_refused_file_is_said_once_per_change(calibrated, naive_dir, tmp_path, caplog):
    path = tmp_path / f"{NAME}.json"
    path.mkdir()  # not a file: unreadable
    with caplog.at_level("WARNING", logger="predictor.calibration"):
        calibrated.recalibrate()
        calibrated.recalibrate()
        calibrated.recalibrate()
        assert calibrated.served.calibration.labels == ("bundle", "invalid")
        path.rmdir()
        path.write_text("{}")
        calibrated.recalibrate()
        calibrated.recalibrate()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "cannot read the calibration state" in lines[0] and "is refused" in lines[1]


def test_a_state_that_passes_its_checks_but_cannot_be_served_leaves_the_bundles(
    calibrated, naive_dir, tmp_path, monkeypatch, caplog
):
    def broken(state):
        raise ValueError("no table")

    monkeypatch.setattr("predictor.calibration.serving", broken)
    save(state_for(naive_dir), tmp_path / f"{NAME}.json")
    with caplog.at_level("WARNING", logger="predictor.calibration"):
        calibrated.recalibrate()
    assert calibrated.served.calibration.labels == ("bundle", "invalid")
    assert "cannot be served: no table" in caplog.text


def test_the_bundle_is_hashed_once_not_on_every_poll(naive_dir, tmp_path, monkeypatch):
    calls = []
    real = metadata_sha256

    def counted(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr("predictor.calibration.metadata_sha256", counted)
    save(state_for(naive_dir), tmp_path / f"{NAME}.json")
    calibrator, bundle = Calibrator(NAME, tmp_path, 3600), load_bundle(naive_dir)
    for _ in range(3):
        assert calibrator.decide(bundle, None).labels == ("online", "usable")
    other = load_bundle(naive_dir)  # another bundle object (a new version): hashed again
    calibrator.decide(other, None)
    assert calls == [naive_dir, naive_dir]


def test_a_removed_state_zeroes_its_dates_and_a_calibration_is_immutable(calibrated, naive_dir, tmp_path):
    from dataclasses import FrozenInstanceError

    path = tmp_path / f"{NAME}.json"
    save(state_for(naive_dir), path)
    calibrated.recalibrate()
    path.unlink()
    calibrated.recalibrate()
    assert calibrated.served.calibration.labels == ("bundle", "no_state")
    for gauge in ("as_of", "updated"):
        name = f"forecaster_calibration_state_{gauge}_timestamp_seconds"
        assert REGISTRY.get_sample_value(name, {"model": NAME}) == 0
    with pytest.raises(FrozenInstanceError):
        calibrated.served.calibration.source = "online"


def test_a_new_state_and_an_age_only_verdict_are_each_logged(naive_dir, tmp_path, caplog):
    path = tmp_path / f"{NAME}.json"
    save(state_for(naive_dir), path)
    model = make_model(naive_dir, calibration_dir=tmp_path, calibration_max_age_s=1.0)
    with caplog.at_level("INFO", logger="predictor.calibration"):
        assert model.try_reload()
        save(state_for(naive_dir, now=datetime.now(UTC) + timedelta(seconds=0.5)), path)  # a newer state
        model.recalibrate()
        time.sleep(1.6)  # the same file, past its bound
        model.recalibrate()
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(" (")[0] for line in lines] == [
        f"{NAME}: serving the online calibration",
        f"{NAME}: serving the online calibration",
        f"{NAME}: serving the bundle's calibration: stale",
    ], lines
