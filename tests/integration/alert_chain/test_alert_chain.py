"""The closed loop on loopback: a bundle trained in the test session, the real predictor and monitor,
a real Prometheus with the chart's own rules (only `for:` shortened so the test takes seconds), and a
CSV of published closes whose latest sessions make the model's error jump."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import REPO
from tests.integration.servers import Predictor, Process, Prometheus, free_port, wait_for
from training.data import read_sample

pytestmark = pytest.mark.slow
CHART_FILES = REPO / "helm" / "petr4-forecaster" / "files"
RULES = CHART_FILES / "rules.yaml"
DASHBOARD = CHART_FILES / "dashboard.json"
MAE_ALERT = "ForecasterRealizedMAEHigh"


def fast_rules(tmp) -> object:
    """The canonical rules with every `for:` at 3 s; expressions and thresholds untouched."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = "3s"
    path = tmp / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    return path


def quiet_market(frame: pd.DataFrame, sessions: int = 20) -> pd.DataFrame:
    """`sessions` more B3-like days where the price barely moves: the naive forecast is nearly exact
    and the model's learned drift becomes all of its error."""
    last = frame.iloc[-1]
    dates = pd.bdate_range(last["date"] + pd.Timedelta(days=1), periods=sessions)
    closes = last["close"] + 0.01 * np.where(np.arange(sessions) % 2 == 0, 1, -1)
    extra = pd.DataFrame({"date": dates, "close": closes, "volume": 1_000_000})
    return pd.concat([frame[["date", "close", "volume"]], extra], ignore_index=True)


@pytest.fixture(scope="module")
def drifting(tmp_path_factory):
    """A bundle trained on the sample that serves the network's own forecast (`--no-shrink-to-naive`):
    a model served at naive (the point weight on evidence gives 0 on the sample) can never lose to
    naive, so the MAE alert could not fire for it; this one carries its learned drift."""
    from tests.conftest import fast_settings
    from training import pipeline

    tmp = tmp_path_factory.mktemp("drifting")
    return pipeline.run(fast_settings(tmp, shrink_to_naive=False))


@pytest.fixture(scope="module")
def chain(drifting, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chain")
    result = drifting
    csv = tmp / "published.csv"
    read_sample()[["date", "close", "volume"]].to_csv(csv, index=False)
    predictor = Predictor(tmp, "aapl", str(result.bundle_path))
    monitor_port = free_port()
    monitor = Process(  # as the chart runs it: with its online calibration store
        [sys.executable, "-m", "monitor", "--model-source", str(result.bundle_path), "--model-name", "aapl",
         "--source", "csv", "--csv", str(csv), "--interval-s", "1", "--port", str(monitor_port),
         "--calendar", "XNYS", "--calibration-dir", str(tmp / "calibration")],
        tmp / "monitor.log",
    )  # fmt: skip
    prometheus = None
    try:
        predictor.wait_ready()
        prometheus = Prometheus(
            tmp, {"predictor": f"127.0.0.1:{predictor.http}", "monitor": f"127.0.0.1:{monitor_port}"},
            [fast_rules(tmp)], labels={"namespace": "forecaster", "inferenceservice": "aapl"},
        ).wait_up()  # fmt: skip
        yield {"csv": csv, "predictor": predictor, "monitor_port": monitor_port, "prometheus": prometheus,
               "monitor": monitor}  # fmt: skip
    finally:
        for proc in (prometheus, monitor, predictor):
            if proc is not None:
                proc.stop()


def test_gauges_are_ingested_and_the_mae_alert_goes_pending_then_firing(chain):
    prometheus, csv = chain["prometheus"], chain["csv"]
    # 1. Published closes as the model saw them: ratio near 1, alert inactive.
    wait_for(lambda: prometheus.query("forecaster_realized_mae_ratio"), 60, "realized gauges in Prometheus")
    (sample,) = prometheus.query("forecaster_realized_mae_ratio")
    assert sample["metric"]["model"] == "aapl" and float(sample["value"][1]) < 1.1
    for name in (
        "forecaster_realized_mae",
        "forecaster_realized_naive_mae",
        "forecaster_data_latest_close_timestamp_seconds",
    ):
        assert prometheus.query(name), f"{name} not ingested"
    assert prometheus.alerts(MAE_ALERT) == []
    # 2. The latest closes make the model's error jump: pending, then firing.
    quiet_market(pd.read_csv(csv, parse_dates=["date"])).to_csv(csv, index=False)
    wait_for(
        lambda: float(prometheus.query("forecaster_realized_mae_ratio")[0]["value"][1]) > 1.1,
        30,
        "ratio jump",
    )
    states = []

    def state() -> str | None:
        alerts = prometheus.alerts(MAE_ALERT)
        if alerts:
            states.append(alerts[0]["state"])
        return states[-1] if states else None

    wait_for(lambda: state() == "pending", 30, "pending")
    wait_for(lambda: state() == "firing", 30, "firing")
    assert states[0] == "pending" and states[-1] == "firing"
    alert = prometheus.alerts(MAE_ALERT)[0]
    assert alert["labels"]["model"] == "aapl" and alert["annotations"]["runbook_url"].endswith(
        "#forecasterrealizedmaehigh"
    )


def promql_metric_names(expr: str) -> set[str]:
    expr = re.sub(r'"[^"]*"', "", expr)  # drop label values
    return set(re.findall(r"\b((?:forecaster|request)_[a-z0-9_]+)\b", expr))


def test_every_metric_in_rules_and_dashboard_is_really_exposed(chain, windows):
    import requests

    predictor = chain["predictor"]
    assert predictor.infer(windows[:1]).status_code == 200
    assert predictor.infer(windows[:1, :30]).status_code == 400  # one rejection, as in real life
    exposed = set()
    for url in (f"{chain['predictor'].url}/metrics", f"http://127.0.0.1:{chain['monitor_port']}/metrics"):
        for line in requests.get(url, timeout=5).text.splitlines():
            if line and not line.startswith("#"):
                exposed.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    rules = yaml.safe_load(RULES.read_text())
    expressions = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    expressions += re.findall(r'"expr":\s*"((?:[^"\\]|\\.)*)"', DASHBOARD.read_text())
    used = set().union(*(promql_metric_names(json.loads(f'"{e}"') if "\\" in e else e) for e in expressions))
    assert used, "no metric names found in the rules and dashboard"
    missing = sorted(used - exposed)
    assert not missing, f"rules/dashboard use metrics no live /metrics exposes: {missing}"
