"""The universe shape of the chart (values `universe`): one Indexed Job and CronJob training one
ticker per index, one InferenceService per shard serving its models from one predictor, one monitor
for every ticker, and the retrainer, ServiceMonitor and `helm test` covering them. Real Helm
renders; schema and admission checks run over the same render in test_validate / test_admission."""

from __future__ import annotations

import json
import re

import helm_python
import pytest
import yaml

from tests.deploy.conftest import CHART, MODES, REPO, UNIVERSE, render, render_docs, universe_values

MODELS = {
    "VALE3.SA": "vale3-sa-forecaster",
    "ITUB4.SA": "itub4-sa-forecaster",
    "BBAS3.SA": "bbas3-sa-forecaster",
    "WEGE3.SA": "wege3-sa-forecaster",
    "ABEV3.SA": "abev3-sa-forecaster",
}
TICKERS = ",".join(UNIVERSE["tickers"])


def by_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pairs(args: list[str]) -> dict[str, str]:
    return dict(zip(args[::2], args[1::2], strict=True))


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"]}


@pytest.mark.parametrize("mode", MODES)
def test_indexed_job_and_cronjob(mode):
    docs = render_docs(universe_values(mode))
    job = by_kind(docs, "Job")["petr4-forecaster-train-ibov"]
    cron = by_kind(docs, "CronJob")["petr4-forecaster-retrain-ibov"]
    for spec in (job["spec"], cron["spec"]["jobTemplate"]["spec"]):
        assert spec["completionMode"] == "Indexed"
        assert (spec["completions"], spec["parallelism"], spec["backoffLimitPerIndex"]) == (5, 2, 1)
        assert "backoffLimit" not in spec, "a Job-wide limit would let one ticker stop the others"
        assert spec["podFailurePolicy"]["rules"] == [
            {
                "action": "FailIndex",
                "onExitCodes": {"containerName": "training", "operator": "In", "values": [3]},
            },
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        ]
        pod = spec["template"]["spec"]
        assert pod["restartPolicy"] == "Never"  # required by podFailurePolicy
        (container,) = pod["containers"]
        assert container["name"] == "training"
        assert env_of(container)["FORECASTER_TRAIN_UNIVERSE"]["value"] == TICKERS
        assert "--ticker" not in container["args"] and "--model-name" not in container["args"]
        assert spec["template"]["metadata"]["labels"]["petr4-forecaster/universe"] == "ibov"
    bootstrap = job["spec"]["template"]["spec"]["containers"][0]["args"]
    retrain = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert bootstrap[-2:] == ["--skip-if-champion", "--require-promotion"] and bootstrap[:-2] == retrain
    assert pairs(retrain) == {
        "--source": "yfinance",
        "--tracking-uri": "$(FORECASTER_TRACKING_URI)",
        "--output-dir": "/tmp/out",
    }
    # The single model's bootstrap semantics: a post-install/upgrade hook, an Argo CD Sync hook.
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
    assert annotations["argocd.argoproj.io/hook"] == "Sync"
    assert cron["spec"]["schedule"] == "30 21 * * 1-5" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    # Beside it, the default model keeps its own Job and CronJob.
    assert set(by_kind(docs, "Job")) == {"petr4-forecaster-train-ibov", "petr4-forecaster-train-petr4-sa"}


def test_parallelism_is_bounded_by_the_tickers():
    docs = render_docs(universe_values(tickers=["VALE3.SA"], parallelism=4, schedule="0 22 * * 1-5"))
    job = by_kind(docs, "Job")["petr4-forecaster-train-ibov"]["spec"]
    assert (job["completions"], job["parallelism"]) == (1, 1)
    assert by_kind(docs, "CronJob")["petr4-forecaster-retrain-ibov"]["spec"]["schedule"] == "0 22 * * 1-5"
    no_bootstrap = render_docs({**universe_values(), "training": {"initialJob": False}})
    assert "petr4-forecaster-train-ibov" not in by_kind(no_bootstrap, "Job")
    assert "petr4-forecaster-retrain-ibov" in by_kind(no_bootstrap, "CronJob")


@pytest.mark.parametrize("mode", MODES)
def test_one_inferenceservice_per_shard(mode):
    """5 tickers in shards of 2: ibov-0 and ibov-1 serve two models each from /mnt/models/<model>/
    (no --model_name); ibov-2, a shard of one, is served as a single model."""
    docs = render_docs(universe_values(mode))
    isvcs = {n: d for n, d in by_kind(docs, "InferenceService").items() if n.startswith("ibov-")}
    assert sorted(isvcs) == ["ibov-0", "ibov-1", "ibov-2"]
    uris = {n: d["spec"]["predictor"]["model"]["storageUri"] for n, d in isvcs.items()}
    assert uris == {
        "ibov-0": "models:/vale3-sa-forecaster@champion,itub4-sa-forecaster/7",
        "ibov-1": "models:/bbas3-sa-forecaster@champion,wege3-sa-forecaster@champion",
        "ibov-2": "models:/abev3-sa-forecaster@champion",
    }
    for name, isvc in isvcs.items():
        assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == mode
        assert isvc["metadata"]["labels"]["petr4-forecaster/universe"] == "ibov"
        assert "transformer" not in isvc["spec"], "the one-call transformer is per ticker"
        predictor = isvc["spec"]["predictor"]
        args = pairs(predictor["model"]["args"])
        assert args["--model-source"] == "/mnt/models" and args["--reload-interval-s"] == "0"
        if name == "ibov-2":
            assert args["--model_name"] == "abev3-sa-forecaster"
        else:
            assert "--model_name" not in args
        assert predictor["model"]["resources"]["limits"]["memory"] == "2Gi"
        assert predictor["labels"]["app.kubernetes.io/component"] == "predictor", "predictor policy applies"
    # The predictors' ServiceMonitor scrapes the shards too.
    monitor = by_kind(docs, "ServiceMonitor")["petr4-forecaster-predictor"]
    names = monitor["spec"]["selector"]["matchExpressions"][0]["values"]
    assert names == ["petr4-sa-forecaster", "ibov-0", "ibov-1", "ibov-2"]


def test_mlflow_delivery_lists_model_sources():
    values = {**universe_values(), "predictor": {"delivery": "mlflow"}}
    isvcs = by_kind(render_docs(values), "InferenceService")
    args = pairs(isvcs["ibov-1"]["spec"]["predictor"]["model"]["args"])
    assert args["--model-sources"] == (
        "models:/bbas3-sa-forecaster@champion,models:/wege3-sa-forecaster@champion"
    )
    assert "--model-source" not in args and "--model_name" not in args
    assert args["--tracking-uri"] == "$(FORECASTER_TRACKING_URI)" and args["--reload-interval-s"] == "60"
    single = pairs(isvcs["ibov-2"]["spec"]["predictor"]["model"]["args"])
    assert single["--model-source"] == "models:/abev3-sa-forecaster@champion"
    assert "storageUri" not in isvcs["ibov-0"]["spec"]["predictor"]["model"]


def test_one_monitor_for_every_ticker():
    docs = render_docs(universe_values(monitorResources={"limits": {"memory": "2Gi"}}))
    deployment = by_kind(docs, "Deployment")["petr4-forecaster-monitor-ibov"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = env_of(container)
    assert env["FORECASTER_MONITOR_UNIVERSE"]["value"] == TICKERS
    assert env["FORECASTER_MONITOR_ALIAS"]["value"] == "champion"
    assert not {"--ticker", "--model-name", "--model-source"} & set(container["args"])
    assert container["resources"] == {"limits": {"memory": "2Gi"}}
    service = by_kind(docs, "Service")["petr4-forecaster-monitor-ibov"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"]["petr4-forecaster/universe"] == "ibov"
    # Not also picked by the single model's monitor Service, nor it by this one.
    single = by_kind(docs, "Service")["petr4-forecaster-monitor-petr4-sa"]["spec"]["selector"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert not single.items() <= labels.items()
    policy = by_kind(docs, "NetworkPolicy")["petr4-forecaster-monitor"]["spec"]["podSelector"]["matchLabels"]
    assert policy.items() <= labels.items()


def test_retrainer_maps_every_model_to_the_universe_cronjob():
    docs = render_docs(universe_values())
    deployment = by_kind(docs, "Deployment")["petr4-forecaster-retrainer"]
    env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
    cronjobs = json.loads(env["FORECASTER_RETRAINER_CRONJOBS"]["value"])
    assert cronjobs == {
        "petr4-sa-forecaster": "petr4-forecaster-retrain-petr4-sa",
        **{name: "petr4-forecaster-retrain-ibov" for name in MODELS.values()},
    }
    (rule,) = [
        r
        for r in by_kind(docs, "Role")["petr4-forecaster-retrainer"]["rules"]
        if "cronjobs" in r["resources"]
    ]
    assert sorted(rule["resourceNames"]) == sorted(set(cronjobs.values())) == sorted(by_kind(docs, "CronJob"))


def test_helm_test_pod_per_shard():
    docs = render_docs(universe_values())
    pods = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Pod"}
    assert set(pods) == {f"petr4-forecaster-test-{s}" for s in ("petr4-sa", "ibov-0", "ibov-1", "ibov-2")}
    env = {
        e["name"]: e.get("value")
        for e in pods["petr4-forecaster-test-ibov-1"]["spec"]["containers"][0]["env"]
    }
    assert env["FORECASTER_TEST_URL"] == "http://ibov-1-predictor.petr4-forecaster.svc.cluster.local"
    assert env["FORECASTER_TEST_MODEL"] == "bbas3-sa-forecaster"


def test_universe_only():
    docs = render_docs({**universe_values(), "models": []})
    assert set(by_kind(docs, "InferenceService")) == {"ibov-0", "ibov-1", "ibov-2"}
    assert set(by_kind(docs, "CronJob")) == {"petr4-forecaster-retrain-ibov"}
    monitors = {n for n, d in by_kind(docs, "Deployment").items() if "monitor" in n}
    assert monitors == {"petr4-forecaster-monitor-ibov"}
    off = render_docs({"universe": {**UNIVERSE, "enabled": False}})
    assert not [d for d in off if "petr4-forecaster/universe" in d["metadata"].get("labels", {})]
    assert off == render_docs(), "universe off: the one-ticker render as before"


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"universe": {"shardsize": 2}}, "shardsize"),
        ({"universe": {"enabled": True, "tickers": []}}, "tickers"),
        ({"universe": {"name": "IBOV"}}, "name"),
        ({"universe": {"shardSize": 0}}, "shardSize"),
        ({"universe": {"tickers": ["A.SA", "A.SA"]}}, "tickers"),
        ({"universe": {"versions": {"A.SA": 0}}}, "versions"),
    ],
)
def test_schema_rejects(values, where):
    with helm_python.Chart.load(CHART) as chart:
        chart.validate_schema(universe_values())
        with pytest.raises(helm_python.HelmValuesError, match=where):
            chart.validate_schema(values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"universe": {**UNIVERSE, "tickers": ["PETR4.SA"]}}, "PETR4.SA is also in models"),
        (
            {"universe": {**UNIVERSE, "tickers": ["PETR4.SA", "petr4-sa"]}, "models": []},
            "share the model name",
        ),
        ({"universe": {**UNIVERSE, "name": "petr4-sa"}}, r"is the short name of models\[PETR4.SA\]"),
        ({"models": []}, "nothing to serve"),
    ],
    ids=["ticker-in-both", "same-model-name", "universe-named-like-a-model", "nothing"],
)
def test_refused_at_template_time(values, message):
    with pytest.raises(helm_python.HelmError, match=message):
        render(values)


def test_lint_strict():
    report = helm_python.lint(
        CHART, {**universe_values(), "images": {"registry": "r.example/ml"}}, strict=True,
        namespace="petr4-forecaster", kube_version="v1.30.0",
    )  # fmt: skip
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert not serious and not report["errors"], report


def test_the_documented_example_renders():
    """docs/deploy.md's universe example passes the schema and renders its shards."""
    text = (REPO / "docs" / "deploy.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)]
    (example,) = [b for b in blocks if isinstance(b, dict) and "universe" in b]
    with helm_python.Chart.load(CHART) as chart:
        chart.validate_schema(example)
    isvcs = [d for d in render_docs(example) if d["kind"] == "InferenceService"]
    assert [d["metadata"]["name"] for d in isvcs] == ["ibov-0"]
    assert isvcs[0]["spec"]["predictor"]["model"]["storageUri"].endswith(
        ",vale3-sa-forecaster/7,itub4-sa-forecaster@champion,bbas3-sa-forecaster@champion,wege3-sa-forecaster@champion"
    )


def test_an_alert_starts_the_universe_job_as_the_schedule_would():
    """The retrainer builds its Job from the CronJob's jobTemplate (retrainer.kube): for the universe
    that is the same Indexed Job, valid for the API server."""
    import kubernetes_validate

    from retrainer.kube import job_from_cronjob

    cron = by_kind(render_docs(universe_values()), "CronJob")["petr4-forecaster-retrain-ibov"]
    cron["metadata"]["uid"] = "0f0e0d0c-0000-4000-8000-000000000000"
    job = job_from_cronjob(cron)
    assert job["spec"] == cron["spec"]["jobTemplate"]["spec"]
    assert (job["spec"]["completionMode"], job["spec"]["completions"]) == ("Indexed", 5)
    for version in ("1.30", "1.33"):
        kubernetes_validate.validate(job, version, strict=True)
