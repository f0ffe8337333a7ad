"""The champion history against a real `mlflow server` on loopback: training's registration (the
real `pipeline._register`, with the real gate's decisions, on tiny bundles) promotes, refuses and
cannot evaluate; `python -m rollout rollback/promote` moves the alias back and forth (the shared
fake Kubernetes API takes the pins); then `python -m rollout history` lists every move, newest first,
with its time, versions, decision, reason and who. A failure to record (the history's experiment
deleted) neither blocks nor undoes a move, and says so; a move that did not happen is not recorded.
With `--prometheus`, each champion's period is read against the real monitor's realized-MAE gauges
in a real Prometheus."""

from __future__ import annotations

import getpass
import json
import logging
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from bundle import OnnxForecaster, load_bundle
from bundle.io import find_bundle
from marketdata.frames import read_csv, validate
from monitor.realized import realized
from rollout import history
from rollout.__main__ import main
from tests.conftest import REPO, fast_settings
from tests.integration.rollout.contract import NAMESPACE, SA_TOKEN, KubeIsvcContract, inference_service
from tests.integration.servers import MlflowServer, Process, Prometheus, free_port, wait_for
from tests.tiny_bundle import WINDOW, windows, write_tiny_bundle
from training import pipeline, registry
from training.data import read_sample
from training.gate import ChampionScore, decide

pytestmark = pytest.mark.slow
NAIVE, MARGIN = 1.0, 0.05
# What the chart's Downward API gives a training pod (templates/training/_pod.tpl).
TRAINING_JOB = {"FORECASTER_WORKLOAD_JOB": "tiny-retrain-29170000",
                "FORECASTER_WORKLOAD_HOST": "tiny-retrain-29170000-x7k2p"}  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("history")
    mlflow_server = MlflowServer(tmp / "mlflow").wait_up()
    try:
        yield mlflow_server
    finally:
        mlflow_server.stop()


@pytest.fixture
def kube():
    contract = KubeIsvcContract(allowed=set())
    yield contract
    contract.close()


def gate_run(server, tmp_path, name: str, mae: float, champion: ChampionScore | None, bias: float = 0.1):
    """One training run's registration, as `pipeline.run` ends: the real gate decides on `mae`
    against naive and `champion`, and `pipeline._register` logs, registers and moves (or not).
    Returns (the training run's id, the gate's decision, pipeline's "registered" line)."""
    settings = fast_settings(tmp_path, tracking_uri=server.url, model_name=name)
    bundle = write_tiny_bundle(tmp_path / f"bundle-{datetime.now(UTC).timestamp()}", bias=bias)
    decision = decide(mae, NAIVE, MARGIN, champion)
    metrics = {"mae": mae, "naive_mae": NAIVE, "mae_ratio": mae / NAIVE}
    client, experiment = registry.connect(settings)
    with mlflow.start_run(experiment_id=experiment) as run:
        registered = pipeline._register(client, settings, name, windows(1, WINDOW)[0], [], metrics, decision,
                                        bundle)  # fmt: skip
    return run.info.run_id, decision, registered


def rollout(server, kube, tmp_path, *args: str) -> int:
    token = tmp_path / "token"
    token.write_text(SA_TOKEN)
    common = ["--tracking-uri", server.url, "--namespace", NAMESPACE, "--api-server", kube.url,
              "--sa-token-path", str(token), "--ca-path", "null", "--retry-delay-s", "0"]  # fmt: skip
    return main([*args, *common])


def history_cli(server, name: str, *extra: str) -> subprocess.CompletedProcess:
    """`python -m rollout history` as an operator runs it: a fresh process, only the tracking URI."""
    return subprocess.run(
        [sys.executable, "-m", "rollout", "history", "--model", name, "--tracking-uri", server.url, *extra],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
    )  # fmt: skip


def storage_uri(kube, name: str) -> str:
    return kube.objects[name]["spec"]["predictor"]["model"]["storageUri"]


def alias_of(server, name: str) -> str:
    return str(MlflowClient(server.url, server.url).get_model_version_by_alias(name, "champion").version)


def test_every_move_is_listed_newest_first_with_its_fields(server, kube, tmp_path, monkeypatch):
    name = "tiny-forecaster"
    kube.allowed = {name}
    kube.objects[name] = inference_service(name, f"models:/{name}@champion")
    for key, value in TRAINING_JOB.items():
        monkeypatch.setenv(key, value)
    first, d1, _ = gate_run(server, tmp_path, name, 1.00, None)  # the first champion
    second, d2, _ = gate_run(server, tmp_path, name, 0.90, ChampionScore("1", mae=0.95))
    third, d3, _ = gate_run(server, tmp_path, name, 1.20, ChampionScore("2", mae=0.90))
    unevaluable = ChampionScore("2", error="cannot fetch its bundle")
    fourth, d4, _ = gate_run(server, tmp_path, name, 0.80, unevaluable)
    outcomes = ["promoted", "promoted", "rejected", "champion_unevaluable"]
    assert [d.outcome for d in (d1, d2, d3, d4)] == outcomes
    assert alias_of(server, name) == "2"

    monkeypatch.delenv("FORECASTER_WORKLOAD_JOB")
    monkeypatch.setenv("FORECASTER_WORKLOAD_HOST", "ops-workstation")
    assert rollout(server, kube, tmp_path, "rollback", "--model", name, "--version", "1") == 0
    promote = ["promote", "--model", name, "--version", "3", "--operator", "alice"]
    assert rollout(server, kube, tmp_path, *promote, "--reason", "canary v3 healthy for 3 days") == 0
    assert alias_of(server, name) == "3" and storage_uri(kube, name) == f"models:/{name}/3"
    # A move that did not happen (no version 99) is not recorded.
    assert rollout(server, kube, tmp_path, "rollback", "--model", name, "--version", "99") == 3
    assert alias_of(server, name) == "3"

    answer = history_cli(server, name, "--json")
    assert answer.returncode == 0, answer.stderr
    document = json.loads(answer.stdout)
    moves = document["moves"]
    rows = [(m["from_version"], m["to_version"], m["decision"], m["candidate"]) for m in moves]
    assert rows == [
        ("1", "3", "promote", "3"),
        ("2", "1", "rollback", "1"),
        ("2", "2", "champion_unevaluable", "4"),
        ("2", "2", "rejected", "3"),
        ("1", "2", "promoted", "2"),
        (None, "1", "promoted", "1"),
    ]
    times = [datetime.fromisoformat(m["at"]) for m in moves]
    assert times == sorted(times, reverse=True) and all(t.tzinfo is not None for t in times)
    assert [m["training_run_id"] for m in moves] == [None, None, fourth, third, second, first]
    assert [m["moved"] for m in moves] == [True, True, False, False, True, True]
    for move, decision in zip(moves[2:], (d4, d3, d2, d1), strict=True):  # the gate's own words
        assert move["reason"] == "; ".join(decision.reasons) and move["operator"] is None
        assert (move["job"], move["host"]) == tuple(TRAINING_JOB.values())
    assert "no current champion" in moves[5]["reason"] and "cannot be evaluated" in moves[2]["reason"]
    promote, rollback = moves[0], moves[1]
    assert promote["operator"] == "alice" and promote["reason"] == "canary v3 healthy for 3 days"
    assert promote["command"] == f"python -m rollout promote --model {name} --version 3 --alias champion"
    assert rollback["operator"] == getpass.getuser() and rollback["reason"] == "rollback by hand"
    assert rollback["host"] == "ops-workstation" and rollback["job"] is None

    text = history_cli(server, name)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == f"{name}@champion: 6 recorded moves, newest first (UTC)"
    heads = [line for line in lines[1:] if not line.startswith(" ")]
    assert [h.split("  ")[1].strip() for h in heads] == [
        "v1 -> v3 promote", "v2 -> v1 rollback", "v2 -> v2 champion_unevaluable v4", "v2 -> v2 rejected v3",
        "v1 -> v2 promoted", "none -> v1 promoted",
    ]  # fmt: skip
    assert heads[0].endswith("alice, on ops-workstation") and f"run {fourth}, job tiny-retrain" in heads[2]
    assert "    reason: canary v3 healthy for 3 days" in lines

    # Where MLflow users look: the history experiment's runs, and the registered model's tag.
    client = MlflowClient(server.url, server.url)
    experiment = client.get_experiment_by_name(history.EXPERIMENT)
    rejected = f"tags.model = '{name}' AND tags.decision = 'rejected'"
    runs = client.search_runs([experiment.experiment_id], rejected)
    assert [r.info.run_name for r in runs] == [f"{name}: v2 -> v2 rejected v3"]
    assert runs[0].data.tags["mlflow.user"] == TRAINING_JOB["FORECASTER_WORKLOAD_JOB"]
    tag = client.get_registered_model(name).tags[history.MODEL_TAG]
    assert "v1 -> v3 promote" in tag and f"python -m rollout history --model {name}" in tag

    assert history_cli(server, name, "--limit", "2", "--json").stdout.count('"decision"') == 2


def test_a_failure_to_record_neither_blocks_nor_undoes_the_move(server, kube, tmp_path, caplog):
    name = "unrecorded-forecaster"
    kube.allowed = {name}
    kube.objects[name] = inference_service(name, f"models:/{name}@champion")
    gate_run(server, tmp_path, name, 1.0, None)
    client = MlflowClient(server.url, server.url)
    experiment = client.get_experiment_by_name(history.EXPERIMENT).experiment_id
    client.delete_experiment(experiment)  # an operator deleted it: every write to it now fails
    try:
        with caplog.at_level(logging.ERROR, logger="rollout.history"):
            run_id, decision, registered = gate_run(server, tmp_path, name, 0.5, ChampionScore("1", mae=0.9))
        assert decision.promote and alias_of(server, name) == "2"  # the promotion stands
        assert "NOT in the champion history" in registered
        assert client.get_run(run_id).data.tags["champion_history"] == "not recorded"
        assert "NOT RECORDED in the champion history" in caplog.text and "v1 -> v2 promoted" in caplog.text

        assert rollout(server, kube, tmp_path, "rollback", "--model", name, "--version", "1") == 0
        assert alias_of(server, name) == "1"
        assert storage_uri(kube, name) == f"models:/{name}/1"
    finally:
        client.restore_experiment(experiment)
    answer = json.loads(history_cli(server, name, "--json").stdout)
    assert [(m["from_version"], m["to_version"]) for m in answer["moves"]] == [(None, "1")]


def test_exit_codes_no_such_model_and_mlflow_unreachable(server, capsys, monkeypatch):
    assert main(["history", "--model", "nobody-forecaster", "--tracking-uri", server.url]) == 3
    assert "no registered model 'nobody-forecaster'" in capsys.readouterr().err
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    assert main(["history", "--model", "tiny-forecaster", "--tracking-uri", dead]) == 5
    assert "cannot read the champion history" in capsys.readouterr().err
    assert main(["history", "--tracking-uri", server.url]) == 2


def test_each_champion_period_is_read_against_the_monitors_realized_mae(server, kube, tmp_path):
    """The real monitor scores whatever `champion` names and Prometheus scrapes it; `rollout
    history --prometheus` averages each version's gauges over the period it held the alias, and
    they equal what the monitor computes for that version on the same closes."""
    name = "watched-forecaster"
    kube.allowed = {name}
    kube.objects[name] = inference_service(name, f"models:/{name}@champion")
    gate_run(server, tmp_path, name, 1.0, None, bias=0.1)  # v1, the first champion
    gate_run(server, tmp_path, name, 1.2, ChampionScore("1", mae=1.0), bias=-0.05)  # v2, refused
    csv = tmp_path / "published.csv"
    read_sample()[["date", "close", "volume"]].to_csv(csv, index=False)
    frame, _ = validate(read_csv(csv), window=1, min_windows=120, drop_frozen=True)
    closes, dates = frame["close"].to_numpy(), [d.date() for d in frame["date"]]
    expected = {}  # what the monitor must compute for each version, on the same closes
    for version in ("1", "2"):
        path = mlflow.artifacts.download_artifacts(
            f"models:/{name}/{version}", dst_path=str(tmp_path / version), tracking_uri=server.url
        )
        forecaster = OnnxForecaster(load_bundle(find_bundle(Path(path))))
        expected[version] = realized(closes, dates, forecaster, sessions=20, interval_sessions=120)
    assert expected["1"].mae != pytest.approx(expected["2"].mae)

    port = free_port()
    monitor = Process([sys.executable, "-m", "monitor", "--model-source", f"models:/{name}@champion",
                       "--tracking-uri", server.url, "--model-name", name, "--source", "csv",
                       "--csv", str(csv), "--interval-s", "1", "--port", str(port)],
                      tmp_path / "monitor.log")  # fmt: skip
    prometheus = None
    try:
        prometheus = Prometheus(tmp_path, {"monitor": f"127.0.0.1:{port}"}, []).wait_up()

        def samples(version: str) -> int:
            found = prometheus.query(
                f'count_over_time(forecaster_realized_mae{{model="{name}",version="{version}"}}[5m])'
            )
            return int(found[0]["value"][1]) if found else 0

        wait_for(lambda: samples("1") >= 3, 90, "three samples of version 1", monitor.proc)
        assert rollout(server, kube, tmp_path, "promote", "--model", name, "--version", "2") == 0
        wait_for(lambda: samples("2") >= 3, 60, "three samples of version 2", monitor.proc)

        answer = history_cli(server, name, "--json", "--prometheus", prometheus.url)
        assert answer.returncode == 0, answer.stderr
        moves = json.loads(answer.stdout)["moves"]
        assert [m["decision"] for m in moves] == ["promote", "rejected", "promoted"]
        assert "served" not in moves[1]  # a refusal starts no period
        now_served, first = moves[0]["served"], moves[2]["served"]
        assert now_served["version"] == "2" and now_served["until"] is None
        assert first["version"] == "1" and first["until"] == moves[0]["at"]
        for served in (now_served, first):
            want = expected[served["version"]]
            assert served["samples"] >= 3
            assert served["mae"] == pytest.approx(want.mae, rel=1e-9)
            assert served["naive_mae"] == pytest.approx(want.naive_mae, rel=1e-9)
            assert served["ratio"] == pytest.approx(want.ratio, rel=1e-9)
        text = history_cli(server, name, "--prometheus", prometheus.url).stdout
        assert "v1 served (until " in text and f"mean realized MAE {expected['1'].mae:.4f}" in text
        assert f"v2 served (still champion): mean realized MAE {expected['2'].mae:.4f}" in text
        dead = f"http://127.0.0.1:{free_port()}"
        assert history_cli(server, name, "--prometheus", dead).returncode == 5
    finally:
        for process in (prometheus, monitor):
            if process is not None:
                process.stop()
