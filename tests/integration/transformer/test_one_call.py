"""The one-call forecast: the real predictor on a tiny bundle, the real transformer in front of it
(kserve's --predictor_host, v2 between them), closes read from a CSV of B3 sessions."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from marketdata.calendar import SessionCalendar
from tests.integration.servers import Predictor, Transformer
from tests.tiny_bundle import WINDOW, expected_forecast, write_tiny_bundle

pytestmark = pytest.mark.slow
NAME, TOKEN = "petr4", "s3cret-token"
B3 = SessionCalendar("BVMF")
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TOKEN_ENV = {"FORECASTER_PREDICTOR_API_TOKEN": TOKEN, "FORECASTER_TRANSFORMER_API_TOKEN": TOKEN}


def write_b3_csv(path: Path) -> pd.DataFrame:
    """Every B3 session of January-June 2024 (no row on Corpus Christi, 30 May), gently moving."""
    sessions = B3.calendar.sessions_in_range("2024-01-02", "2024-06-28")
    t = np.arange(len(sessions))
    frame = pd.DataFrame({"date": [d.date().isoformat() for d in sessions],
                          "close": np.round(36.0 * np.exp(0.002 * t + 0.01 * np.sin(t)), 4),
                          "volume": 1_000_000})  # fmt: skip
    frame.to_csv(path, index=False)
    return frame


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("one-call")
    write_tiny_bundle(tmp / "bundle")
    frame = write_b3_csv(tmp / "closes.csv")
    predictor = Predictor(tmp, NAME, str(tmp / "bundle"), env=TOKEN_ENV)
    transformer = None
    try:
        predictor.wait_ready()
        csv = str(tmp / "closes.csv")
        transformer = Transformer(tmp, NAME, predictor.http, "--source", "csv", "--csv", csv,
                                  "--calendar", "BVMF", env=TOKEN_ENV)  # fmt: skip
        transformer.wait_ready()
        yield predictor, transformer, frame
    finally:
        if transformer is not None:
            transformer.stop()
        predictor.stop()


def closes_through(frame: pd.DataFrame, day: str) -> np.ndarray:
    return frame.loc[frame["date"] <= day, "close"].to_numpy(dtype=np.float64)[-WINDOW:]


def v1(transformer, body, headers=AUTH):
    return transformer.post(f"/v1/models/{NAME}:predict", json=body, headers=headers)


def v2(transformer, inputs, headers=AUTH, name=NAME):
    tensors = [{"name": k, "datatype": "BYTES", "shape": [1], "data": [v]} for k, v in inputs.items()]
    body = {"inputs": tensors}
    return transformer.post(f"/v2/models/{name}/infer", json=body, headers=headers)


def test_one_call_over_v1_answers_the_forecast_and_where_it_comes_from(stack):
    predictor, transformer, frame = stack
    answer = v1(transformer, {"instances": [{"ticker": "PETR4.SA", "as_of": "2024-06-03"}]}).json()
    (row,) = answer["predictions"]
    closes = closes_through(frame, "2024-06-03")
    version = predictor.get(f"/v2/models/{NAME}").json()["versions"][0]
    assert row["ticker"] == "PETR4.SA" and row["model_version"] == version
    assert (row["as_of_requested"], row["as_of_session"], row["forecast_session"]) == (
        "2024-06-03", "2024-06-03", "2024-06-04",
    )  # fmt: skip
    assert row["last_close"] == pytest.approx(closes[-1])
    assert row["forecast"] == pytest.approx(expected_forecast(closes[None])[0], rel=1e-5)
    assert row["change_pct"] == pytest.approx(100 * (row["forecast"] / closes[-1] - 1))
    assert row["lower_95"] < row["lower_80"] < row["forecast"] < row["upper_80"] < row["upper_95"]
    assert (row["source"], row["data_through"], row["stale"]) == ("csv:closes.csv", "2024-06-28", False)
    assert (row["expected_session"], row["age_s"]) == ("2024-06-03", 0.0)  # the data reaches the as-of date
    assert row["fetched_at"] and "source_error" not in row


def test_one_call_over_v2_answers_the_same_as_tensors(stack):
    _, transformer, _ = stack
    (row,) = v1(transformer, {"as_of": "2024-06-03"}).json()["predictions"]
    response = v2(transformer, {"as_of": "2024-06-03"}).json()
    tensors = {o["name"]: o for o in response["outputs"]}
    assert response["model_name"] == NAME and response["model_version"] == row["model_version"]
    assert tensors["forecast"]["datatype"] == "FP64" and tensors["forecast"]["shape"] == [1]
    assert tensors["forecast"]["data"][0] == pytest.approx(row["forecast"])
    assert tensors["upper_95"]["data"][0] == pytest.approx(row["upper_95"])
    session = tensors["as_of_session"]
    assert (session["datatype"], session["shape"], session["data"]) == ("BYTES", [1], ["2024-06-03"])
    assert tensors["stale"]["datatype"] == "BOOL" and tensors["stale"]["data"] == [False]


def test_a_holiday_answers_from_the_previous_session_and_says_so(stack):
    _, transformer, frame = stack
    (row,) = v1(transformer, {"as_of": "2024-05-30"}).json()["predictions"]  # Corpus Christi
    assert (row["as_of_requested"], row["as_of_session"]) == ("2024-05-30", "2024-05-29")
    assert "no BVMF session" in row["note"]
    assert row["last_close"] == pytest.approx(closes_through(frame, "2024-05-29")[-1])


def test_the_cache_answers_repeated_calls_without_fetching(stack):
    _, transformer, _ = stack
    v1(transformer, {"as_of": "2024-06-03"})
    fetches = transformer.metric("forecaster_marketdata_fetches_total", ticker="PETR4.SA")
    hits = transformer.metric("forecaster_marketdata_cache_hits_total", ticker="PETR4.SA")
    for day in ("2024-06-03", "2024-06-04", "2024-04-01"):
        assert v1(transformer, {"as_of": day}).status_code == 200
    assert transformer.metric("forecaster_marketdata_fetches_total", ticker="PETR4.SA") == fetches
    assert transformer.metric("forecaster_marketdata_cache_hits_total", ticker="PETR4.SA") == hits + 3


def test_calls_that_carry_closes_are_relayed_to_the_predictor(stack):
    """The InferenceService's URL routes to the transformer: direct v2/v1 calls must still work."""
    predictor, transformer, frame = stack
    closes = closes_through(frame, "2024-06-03")
    body = {"inputs": [{"name": "closes", "shape": [1, WINDOW], "datatype": "FP64", "data": closes.tolist()}]}
    relayed = transformer.post(f"/v2/models/{NAME}/infer", json=body, headers=AUTH).json()
    direct = predictor.post(f"/v2/models/{NAME}/infer", json=body, headers=AUTH).json()

    def tensors(body):  # kserve re-encodes the relayed answer: `parameters` may come back as null
        return [{k: o[k] for k in ("name", "shape", "datatype", "data")} for o in body["outputs"]]

    assert tensors(relayed) == tensors(direct) and relayed["model_version"] == direct["model_version"]
    v1_body = {"instances": [closes.tolist(), (closes * 1.1).tolist()]}
    assert (
        v1(transformer, v1_body).json()
        == predictor.post(f"/v1/models/{NAME}:predict", json=v1_body, headers=AUTH).json()
    )
    short = {"instances": [closes[:5].tolist()]}
    response = v1(transformer, short)
    assert response.status_code == 400 and "needs 8" in response.json()["error"]  # the predictor's words
    ragged = v1(transformer, {"instances": [closes.tolist(), closes[:3].tolist()]})
    assert ragged.status_code == 400 and "instance 1 has 3 closes" in ragged.json()["error"]


def test_a_token_is_required_when_set(stack):
    _, transformer, _ = stack
    assert v1(transformer, {}, headers={}).status_code == 401
    assert v2(transformer, {}, headers={"Authorization": "Bearer wrong"}).status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"as_of": "2023-01-05"}, 400, "outside the data"),
        ({"as_of": "2024-01-05"}, 400, "needs 8 sessions"),
        ({"as_of": "2024-09-02"}, 503, "does not reach the as-of session, 2024-09-02: it ends at 2024-06-28"),
        ({"as_of": "2999-01-01"}, 400, "in the future"),
        ({"as_of": "03/06/2024"}, 400, "YYYY-MM-DD"),
        ({"ticker": "VALE3.SA"}, 400, "forecasts PETR4.SA"),
        ({"closes": [1.0, 2.0]}, 400, "send none"),
        ({"instances": [{"closes": [1.0]}]}, 400, "send none"),
        ({"instances": [{}, {}]}, 400, "at most one"),
    ],
)
def test_bad_asks_are_refused_naming_the_problem(stack, body, status, says):
    _, transformer, _ = stack
    response = v1(transformer, body)
    assert response.status_code == status and says in response.json()["error"]


def test_unknown_model_and_malformed_bodies_are_4xx(stack):
    _, transformer, _ = stack
    assert v2(transformer, {}, name="vale3").status_code == 404
    assert transformer.post(f"/v1/models/{NAME}:predict", data=b"{not json", headers=AUTH).status_code == 400
    bad = {"inputs": [{"name": "as_of", "datatype": "FP64", "shape": [1], "data": [1.0]}]}
    response = transformer.post(f"/v2/models/{NAME}/infer", json=bad, headers=AUTH)
    assert response.status_code == 400 and "BYTES" in response.json()["error"]


def b3_sessions_through(last: pd.Timestamp, count: int = 60) -> pd.DataFrame:
    sessions = B3.calendar.sessions_in_range(last - pd.Timedelta(days=2 * count), last)[-count:]
    t = np.arange(len(sessions))
    return pd.DataFrame({"date": [d.date().isoformat() for d in sessions],
                         "close": np.round(36.0 * np.exp(0.002 * t + 0.01 * np.sin(t)), 4),
                         "volume": 1_000_000})  # fmt: skip


def test_freshness_is_judged_against_the_exchange_calendar_not_the_fetch(tmp_path):
    """The real transformer on the wall clock: a source answering two-year-old rows is refused (not
    served as fresh, as before), one a session behind is served stale with the age since that
    session settled, one failing keeps it stale with its error, one caught up is current; the
    staleness gauge the alert reads follows."""
    write_tiny_bundle(tmp_path / "bundle")
    csv = tmp_path / "closes.csv"
    write_b3_csv(csv)  # through 2024-06-28
    predictor = Predictor(tmp_path, NAME, str(tmp_path / "bundle"))
    transformer = Transformer(tmp_path, NAME, predictor.http, "--source", "csv", "--csv", str(csv),
                              "--refetch-interval-s", "0.5", "--max-age-s", str(30 * 86400),
                              "--fetch-retries", "2", "--fetch-backoff-s", "0.01")  # fmt: skip
    try:
        predictor.wait_ready()
        transformer.wait_ready()
        settled = B3.last_settled_session(datetime.now(UTC))
        response = v1(transformer, {})
        assert response.status_code == 503, response.text
        assert (f"does not reach the latest settled session, {settled}: it ends at 2024-06-28, and the "
                "session after it settled at 2024-07-01T21:30:00Z") in response.json()["error"]  # fmt: skip
        assert "csv:closes.csv answers data through 2024-06-28" in response.json()["error"]
        two_years = time.time() - datetime(2024, 7, 1, 21, 30, tzinfo=UTC).timestamp()
        assert transformer.metric("forecaster_marketdata_stale", ticker="PETR4.SA") == 1
        assert transformer.metric("forecaster_marketdata_age_seconds", ticker="PETR4.SA") == pytest.approx(
            two_years, abs=30
        )
        assert transformer.metric("forecaster_marketdata_refused_total", ticker="PETR4.SA") >= 1
        (row,) = v1(transformer, {"as_of": "2024-06-03"}).json()["predictions"]  # a date it reaches
        assert (row["stale"], row["age_s"], row["as_of_session"]) == (False, 0.0, "2024-06-03")

        behind = B3.calendar.previous_session(pd.Timestamp(settled))
        b3_sessions_through(behind).to_csv(csv, index=False)  # the source answers, a session behind
        time.sleep(0.6)
        (row,) = v1(transformer, {}).json()["predictions"]
        lag = time.time() - B3.settled_at(settled).timestamp()
        assert (row["stale"], row["as_of_session"], row["expected_session"]) == (
            True, behind.date().isoformat(), settled.isoformat(),
        )  # fmt: skip
        assert row["age_s"] == pytest.approx(lag, abs=5) and "source_error" not in row
        assert transformer.metric("forecaster_marketdata_stale", ticker="PETR4.SA") == 1

        csv.write_text("date,close\n2024-07-01,-3\n")  # then garbage: still stale, with the reason
        time.sleep(0.6)
        (row,) = v1(transformer, {}).json()["predictions"]
        assert row["stale"] and row["as_of_session"] == behind.date().isoformat()
        assert "non-positive close" in row["source_error"]
        assert transformer.metric("forecaster_marketdata_source_errors_total", kind="data") >= 2

        b3_sessions_through(pd.Timestamp(settled)).to_csv(csv, index=False)  # caught up: current
        time.sleep(0.6)
        (row,) = v1(transformer, {}).json()["predictions"]
        assert (row["stale"], row["age_s"], row["as_of_session"]) == (False, 0.0, settled.isoformat())
        assert transformer.metric("forecaster_marketdata_stale", ticker="PETR4.SA") == 0
        assert transformer.metric("forecaster_marketdata_age_seconds", ticker="PETR4.SA") == 0

        predictor.stop()  # and the predictor gone: 503 naming it, the transformer still up
        response = v1(transformer, {})
        assert response.status_code == 503 and "unreachable" in response.json()["error"]
        assert transformer.get("/v2/health/live").status_code == 200
    finally:
        transformer.stop()
        predictor.stop()
