"""Issue 24's "Done when", end to end: a real monitor (`python -m monitor`, its own process each run)
on real PETR4 closes whose volatility jumps (March 2020, inside the monitor's window) writes the
online calibration state into a directory; a running predictor (`python -m predictor`, loopback)
serves it once it appears, its bands differing from the bundle's by what the state says and every
answer saying "online"; a second monitor run (a restart) continues the same state; the transformer's
one call reports the calibration; then the state passes its bound and the predictor serves the
bundle's bands again, saying why. Before the state exists, and after it is ignored, the bands are the
bundle's own.

The bundle serves naive (point weight 0) with a unit-normal |z| table, so every band is written down
by hand: point = last close, half-width = |z| quantile x sigma."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from bundle.distribution import ewma_sigma
from bundle.online import ANCHOR, load, serving
from tests.conftest import REPO
from tests.integration.servers import Predictor, Transformer, wait_for
from tests.tiny_bundle import normal_distribution, write_naive_bundle

pytestmark = pytest.mark.slow
NAME = "petr4-sa-forecaster"
MAX_AGE_S = 45  # the bound, a setting: the test waits it out instead of four days
FIRST, SECOND = "2020-03-13", "2020-03-20"  # the monitor's two runs: after the jump, a week later


def write_closes(source, path, through: str) -> pd.DataFrame:
    """PETR4 from 2016 (the HAR fit's history) through `through`, with open/high/low, as a CSV."""
    frame = pd.read_csv(source)
    frame = frame[(frame["date"] >= "2016-01-01") & (frame["date"] <= through)]
    frame.to_csv(path, index=False)
    return frame


def run_monitor(tmp, bundle, csv, states) -> None:
    """`python -m monitor --once`: a new process every time, as after a restart."""
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "--once", "--model-source", str(bundle), "--model-name", NAME,
         "--source", "csv", "--csv", str(csv), "--calibration-dir", str(states), "--interval-sessions", "120",
         "--port", "9"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "online calibration state as of" in result.stderr


def v2(predictor: Predictor, closes: np.ndarray) -> tuple[dict[str, float], dict]:
    response = predictor.infer(closes[None, :])
    assert response.status_code == 200, response.text
    body = response.json()
    return {o["name"]: o["data"][0] for o in body["outputs"]}, body["parameters"]


def bundle_bands(closes: np.ndarray) -> dict[str, float]:
    """What the bundle serves: naive, unit-normal |z| times the window's floored EWMA sigma."""
    sigma = max(float(ewma_sigma(closes[None, :])[0]), normal_distribution().sigma_floor)
    last = closes[-1]
    out = {"forecast": last}
    for c in (0.8, 0.95):
        z = NormalDist().inv_cdf((1 + c) / 2)
        out[f"lower_{round(c * 100)}"], out[f"upper_{round(c * 100)}"] = (
            last * math.exp(-z * sigma), last * math.exp(z * sigma),
        )  # fmt: skip
    return out


def online_bands(state, closes: np.ndarray) -> dict[str, float]:
    """What the state says for the latest window: the state's |z| table times its next_sigma."""
    dist, last = serving(state), closes[-1]
    out = {"forecast": last}
    for c in (0.8, 0.95):
        half = float(dist.halfwidth(c)) * state.next_sigma
        out[f"lower_{round(c * 100)}"], out[f"upper_{round(c * 100)}"] = (
            last * math.exp(-half),
            last * math.exp(half),
        )
    return out


def assert_bands(got: dict[str, float], expected: dict[str, float]) -> None:
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-9), name


def served(predictor: Predictor, calibration: str, reason: str, timeout: float = 30):
    """Wait until the predictor's answers say `calibration` for `reason` (its poll is 0.5 s)."""

    def says() -> bool:
        _, parameters = v2(predictor, np.full(60, 10.0))
        return (parameters["calibration"], parameters["calibration_reason"]) == (calibration, reason)

    wait_for(says, timeout, f"the predictor serving the {calibration} calibration ({reason})", predictor.proc)


def test_the_monitors_state_is_served_then_ignored_when_stale(tmp_path, petr4_csv):
    bundle, states, csv = tmp_path / "bundle", tmp_path / "states", tmp_path / "closes.csv"
    write_naive_bundle(bundle)
    frame = write_closes(petr4_csv, csv, FIRST)
    calibration = ["--calibration-dir", str(states), "--calibration-max-age-s", str(MAX_AGE_S),
                   "--calibration-poll-s", "0.5"]  # fmt: skip
    predictor = Predictor(tmp_path, NAME, str(bundle), *calibration)
    transformer = None
    try:
        predictor.wait_ready()
        # 1. No state yet: the bundle's bands, and every answer says why.
        closes = frame["close"].to_numpy(dtype=np.float64)[-60:]
        got, parameters = v2(predictor, closes)
        assert parameters == {"calibration": "bundle", "calibration_reason": "no_state"}
        assert_bands(got, bundle_bands(closes))
        assert predictor.metric("forecaster_calibration", model=NAME, source="bundle", reason="no_state") == 1

        # 2. The monitor's first run: a state through the jump, served at the next poll.
        run_monitor(tmp_path, bundle, csv, states)
        first = load(states / f"{NAME}.json")
        assert str(first.as_of) == FIRST and len(first.scores) == 250
        served(predictor, "online", "usable")
        got, parameters = v2(predictor, closes)
        assert parameters == {"calibration": "online", "calibration_reason": "usable",
                              "calibration_state_as_of": FIRST}  # fmt: skip
        assert tuple(first.recent_closes[-ANCHOR:]) == tuple(closes[-ANCHOR:])  # the latest window
        assert_bands(got, online_bands(first, closes))
        # The jump: the state's band is wider than the bundle's EWMA band on the same window.
        assert got["upper_95"] > bundle_bands(closes)["upper_95"]
        v1 = predictor.post(f"/v1/models/{NAME}:predict", json={"instances": [closes.tolist()]}).json()
        assert v1["parameters"] == parameters and v1["predictions"][0]["upper_80"] == got["upper_80"]

        # 3. A week later the monitor runs again in a new process: it reads its state back and moves
        # it by the five sessions since (the HAR fit is the first run's: continued, not restarted).
        frame = write_closes(petr4_csv, csv, SECOND)
        run_monitor(tmp_path, bundle, csv, states)
        second = load(states / f"{NAME}.json")
        assert str(second.as_of) == SECOND and second.range_har == first.range_har
        assert second.scores[:-5] == first.scores[5:]
        closes = frame["close"].to_numpy(dtype=np.float64)[-60:]
        wait_for(lambda: v2(predictor, closes)[1].get("calibration_state_as_of") == SECOND, 30,
                 "the second state served", predictor.proc)  # fmt: skip
        assert_bands(v2(predictor, closes)[0], online_bands(second, closes))

        # 4. The transformer's one call (closes from the same CSV) reports the calibration served.
        transformer = Transformer(tmp_path, NAME, predictor.http, "--source", "csv", "--csv", str(csv),
                                  "--calendar", "BVMF")  # fmt: skip
        transformer.wait_ready()
        # The CSV ends in 2020: the call names its as-of date, or the data is years stale (a 503).
        answer = transformer.post(f"/v1/models/{NAME}:predict", json={"instances": [{"as_of": SECOND}]})
        (row,) = answer.json()["predictions"]
        assert (row["as_of_session"], row["calibration"], row["calibration_reason"]) == (
            SECOND,
            "online",
            "usable",
        )
        assert row["calibration_state_as_of"] == SECOND
        assert row["upper_80"] == pytest.approx(online_bands(second, closes)["upper_80"], rel=1e-9)

        # 5. Past its bound (no monitor run since): ignored, the bundle's bands again, and why.
        served(predictor, "bundle", "stale", timeout=MAX_AGE_S + 30)
        got, parameters = v2(predictor, closes)
        assert parameters == {"calibration": "bundle", "calibration_reason": "stale",
                              "calibration_state_as_of": SECOND}  # fmt: skip
        assert_bands(got, bundle_bands(closes))
        assert predictor.metric("forecaster_calibration", model=NAME, source="bundle", reason="stale") == 1
        assert predictor.metric("forecaster_calibration", model=NAME, source="online", reason="usable") == 0
        # The CSV ends in 2020: the call names its as-of date, or the data is years stale (a 503).
        answer = transformer.post(f"/v1/models/{NAME}:predict", json={"instances": [{"as_of": SECOND}]})
        (row,) = answer.json()["predictions"]
        assert (row["calibration"], row["calibration_reason"]) == ("bundle", "stale")
        assert time.time() - second.updated_at.timestamp() > MAX_AGE_S
    finally:
        if transformer is not None:
            transformer.stop()
        predictor.stop()
