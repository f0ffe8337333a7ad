"""The chart's universe workloads against the code they run: the rendered args and environment of
the Indexed Job, the CronJob and the monitor are parsed by the real settings classes, so a renamed
flag or variable on either side fails here rather than in a cluster. Each Job index must train the
ticker at that position, under the model name the InferenceService shard serves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bundle.conventions import model_name_for
from monitor.settings import MonitorSettings
from tests.deploy.conftest import MODES, UNIVERSE, render_docs, universe_values
from training.settings import TrainSettings

TRACKING = "http://mlflow.example:5000"


def container(doc: dict, name: str) -> dict:
    spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
    return next(c for c in spec["template"]["spec"]["containers"] if c["name"] == name)


def plain_env(container: dict, downward: dict[str, str]) -> dict[str, str]:
    """The container's literal variables, plus what Kubernetes would set (`downward`)."""
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return {**env, "FORECASTER_TRACKING_URI": TRACKING, **downward}


def expand(args: list[str], env: dict[str, str]) -> list[str]:
    """Kubernetes' $(VAR) expansion in args."""
    return [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in args]


def workloads(mode: str) -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in render_docs(universe_values(mode))}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", ["Job", "CronJob"])
def test_each_index_trains_its_ticker(mode, kind, monkeypatch):
    name = "petr4-forecaster-train-ibov" if kind == "Job" else "petr4-forecaster-retrain-ibov"
    training = container(workloads(mode)[(kind, name)], "training")
    served = {
        model
        for d in render_docs(universe_values(mode))
        if d["kind"] == "InferenceService"
        for model in re.findall(r"[a-z0-9-]+-forecaster", str(d["spec"]["predictor"]))
    }
    for index, ticker in enumerate(UNIVERSE["tickers"]):
        env = plain_env(training, {"JOB_COMPLETION_INDEX": str(index)})
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = TrainSettings(_cli_parse_args=expand(training["args"], env))
        assert settings.ticker == ticker
        assert settings.registered_name == model_name_for(ticker) in served
        assert settings.tracking_uri == TRACKING


@pytest.mark.parametrize("mode", MODES)
def test_the_monitor_scores_every_ticker(mode, monkeypatch):
    monitor = container(workloads(mode)[("Deployment", "petr4-forecaster-monitor-ibov")], "monitor")
    env = plain_env(monitor, {"FORECASTER_MONITOR_NAMESPACE": "petr4-forecaster"})  # its fieldRef
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = MonitorSettings(_cli_parse_args=expand(monitor["args"], env))
    assert settings.tickers == tuple(UNIVERSE["tickers"])
    per_ticker = [settings.for_ticker(t) for t in settings.tickers]
    assert [s.model_source for s in per_ticker] == [
        f"models:/{model_name_for(t)}@champion" for t in UNIVERSE["tickers"]
    ]
    assert {s.tracking_uri for s in per_ticker} == {TRACKING}


@pytest.mark.parametrize("mode", MODES)
def test_universe_jobs_pin_nothing(mode):
    """A pin per index would roll a whole shard out once per promoted ticker, and the rollout Role
    names single models only: the universe's pods train and stop, with no API token mounted."""
    docs = workloads(mode)
    for kind, name in (("Job", "petr4-forecaster-train-ibov"), ("CronJob", "petr4-forecaster-retrain-ibov")):
        doc = docs[(kind, name)]
        spec = doc["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else doc["spec"]
        pod = spec["template"]["spec"]
        assert [c["name"] for c in pod["containers"]] == ["training"]
        assert "kube-api-access" not in {v["name"] for v in pod["volumes"]}
    (role,) = [d for (kind, name), d in docs.items() if kind == "Role" and name.endswith("-rollout")]
    assert not any(n.startswith("ibov-") for rule in role["rules"] for n in rule["resourceNames"])


def shard_models() -> dict[str, list[str]]:
    """What each shard must serve: the universe's tickers in order, `shardSize` at a time."""
    tickers, size = UNIVERSE["tickers"], UNIVERSE["shardSize"]
    return {
        f"ibov-{i}": [model_name_for(t) for t in tickers[start : start + size]]
        for i, start in enumerate(range(0, len(tickers), size))
    }


def served_names(args: list[str], root: Path) -> list[str]:
    """The names the predictor would serve with these args (its own parser and source listing)."""
    from predictor.__main__ import parse
    from predictor.sources import model_sources

    env = {"FORECASTER_TRACKING_URI": TRACKING}
    args = [a.replace("/mnt/models", str(root)) for a in expand(args, env)]
    kserve_args, settings = parse(args)
    return [m.name for m in model_sources(settings, kserve_args.model_name)]


@pytest.mark.parametrize("delivery", ["storageUri", "mlflow"])
def test_each_shard_serves_its_tickers_models(delivery, tmp_path):
    """storageUri: the storage initializer's parser reads the shard's URI and lays the models out
    as /mnt/models/<name>/, which the predictor lists back under the same names; mlflow: the
    predictor's --model-sources names them. Either way a shard serves exactly its tickers' models."""
    from bundle.fetch import parse_sources
    from bundle.io import METADATA_FILE

    values = {**universe_values("Standard"), "predictor": {"delivery": delivery}}
    shards = {
        d["metadata"]["name"]: d["spec"]["predictor"]["model"]
        for d in render_docs(values)
        if d["kind"] == "InferenceService" and d["metadata"]["name"].startswith("ibov-")
    }
    assert set(shards) == set(shard_models())
    for name, model in shards.items():
        expected = shard_models()[name]
        root = tmp_path / name
        root.mkdir()
        if delivery == "storageUri":
            fetched = [uri.name for uri in parse_sources(model["storageUri"])]
            assert fetched == expected
            if len(fetched) > 1:  # a shard: one directory per model (a single one is the root)
                for fetched_name in fetched:
                    (root / fetched_name).mkdir()
                    (root / fetched_name / METADATA_FILE).write_text("{}")
        else:
            assert "storageUri" not in model
        assert sorted(served_names(model["args"], root)) == sorted(expected)
