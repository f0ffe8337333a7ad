"""The Helm chart: renders (default and multi-ticker + canary, both KServe modes), lints clean in
strict mode, and its values.schema.json rejects misspelled keys."""

from __future__ import annotations

import helm_python
import pytest

from tests.deploy.conftest import CHART, KUBE_VERSIONS, MODES, key, multi_values, render, render_docs


def by_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def predictor_args(predictor: dict) -> dict[str, str]:
    args = predictor["containers"][0]["args"]
    return dict(zip(args[::2], args[1::2], strict=True))


@pytest.mark.parametrize("mode", MODES)
def test_default_render(mode):
    docs = render_docs({"kserve": {"deploymentMode": mode}})
    kinds = sorted(key(d) for d in docs)
    assert len(kinds) == len(set(kinds)), "duplicate objects"
    isvc = by_kind(docs, "InferenceService")["petr4-sa-forecaster"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == mode
    predictor = isvc["spec"]["predictor"]
    container = predictor["containers"][0]
    assert container["name"] == "kserve-container"
    assert predictor_args(predictor) == {
        "--model_name": "petr4-sa-forecaster",
        "--model_source": "models:/petr4-sa-forecaster@champion",
        "--tracking_uri": "$(FORECASTER_TRACKING_URI)",
        "--http_port": "8080",
        "--grpc_port": "8081",
        "--workers": "1",
        "--threads": "1",
        "--variant": "fp32",
        "--reload_interval_s": "60",
    }
    env = {e["name"]: e for e in container["env"]}
    assert env["PROMETHEUS_MULTIPROC_DIR"]["value"] == "/tmp/metrics"
    assert env["FORECASTER_PREDICTOR_CACHE_DIR"]["value"] == "/tmp/bundles"
    assert env["FORECASTER_TRACKING_URI"]["valueFrom"]["configMapKeyRef"]["key"] == "tracking-uri"
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    security = container["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]
    assert security["seccompProfile"]["type"] == "RuntimeDefault"
    ports = [p["containerPort"] for p in container["ports"]]
    annotations = isvc["metadata"]["annotations"]
    if mode == "Standard":
        assert ports == [8080, 8081]
        assert annotations["serving.kserve.io/autoscalerClass"] == "hpa"
        assert annotations["serving.kserve.io/metrics"] == "cpu"
        assert predictor["scaleMetric"] == "cpu" and predictor["securityContext"]["runAsNonRoot"]
    else:  # Knative: one port, its own autoscaler, no pod securityContext (feature-flagged there)
        assert ports == [8080]
        assert "serving.kserve.io/autoscalerClass" not in annotations
        assert predictor["scaleMetric"] == "concurrency" and "securityContext" not in predictor
    config = by_kind(docs, "ConfigMap")["petr4-forecaster-config"]
    assert config["data"]["tracking-uri"] == "http://petr4-forecaster-mlflow:5000"
    mlflow = by_kind(docs, "Deployment")["petr4-forecaster-mlflow"]["spec"]["template"]["spec"]["containers"][
        0
    ]
    assert mlflow["args"][:11] == [
        "server",
        "--host",
        "0.0.0.0",
        "--port",
        "5000",
        "--backend-store-uri",
        "sqlite:////data/mlflow.db",
        "--artifacts-destination",
        "/data/artifacts",
        "--workers",
        "1",
    ]
    assert (
        "petr4-forecaster-mlflow.petr4-forecaster.svc:5000"
        in mlflow["args"][mlflow["args"].index("--allowed-hosts") + 1]
    )
    assert {"name": "MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "value": "false"} in mlflow["env"]
    job = by_kind(docs, "Job")["petr4-forecaster-train-petr4-sa"]
    train = job["spec"]["template"]["spec"]["containers"][0]
    assert train["args"] == [
        "--source",
        "yfinance",
        "--ticker",
        "PETR4.SA",
        "--model-name",
        "petr4-sa-forecaster",
        "--tracking-uri",
        "$(FORECASTER_TRACKING_URI)",
        "--output-dir",
        "/tmp/out",
    ]
    assert job["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    cron = by_kind(docs, "CronJob")["petr4-forecaster-retrain-petr4-sa"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid" and cron["spec"]["schedule"] == "30 21 * * 1-5"
    assert cron["spec"]["jobTemplate"]["spec"]["template"] == job["spec"]["template"]
    for sa in by_kind(docs, "ServiceAccount").values():
        assert sa["automountServiceAccountToken"] is False
    assert not by_kind(docs, "Role") and not by_kind(docs, "RoleBinding"), "no component needs the API"


@pytest.mark.parametrize("mode", MODES)
def test_multi_ticker_canary_render(mode):
    docs = render_docs(multi_values(mode))
    isvcs = by_kind(docs, "InferenceService")
    assert set(isvcs) == {"petr4-sa-forecaster", "vale-forecaster", "itub4-sa-forecaster"}
    assert set(by_kind(docs, "CronJob")) == {
        f"petr4-forecaster-retrain-{m}" for m in ("petr4-sa", "vale", "itub4-sa")
    }
    assert by_kind(docs, "CronJob")["petr4-forecaster-retrain-vale"]["spec"]["schedule"] == "0 22 * * 1-5"
    vale = isvcs["vale-forecaster"]["spec"]["predictor"]
    assert (vale["minReplicas"], vale["maxReplicas"]) == (2, 5)
    assert vale["containers"][0]["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}
    assert vale["containers"][0]["image"] == "registry.invalid/ml/petr4-forecaster-serve:0.1.0"
    job = by_kind(docs, "Job")["petr4-forecaster-train-itub4-sa"]["spec"]["template"]["spec"]
    assert job["containers"][0]["image"].startswith("registry.invalid/ml/petr4-forecaster-train@sha256:")
    assert job["containers"][0]["resources"]["limits"]["memory"] == "6Gi"
    assert job["containers"][0]["args"][-2:] == ["--max-epochs", "30"]
    assert job["imagePullSecrets"] == [{"name": "regcred"}]
    env = {e["name"]: e for e in job["containers"][0]["env"]}
    assert env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "mlflow-auth",
        "key": "password",
    }
    petr4 = isvcs["petr4-sa-forecaster"]["spec"]
    if mode == "Standard":  # spec.canary: a second predictor on the challenger alias
        assert predictor_args(petr4["predictor"])["--model_source"] == "models:/petr4-sa-forecaster@champion"
        (canary,) = petr4["canary"]
        assert canary["trafficPercent"] == 20
        assert (
            predictor_args(canary["predictor"])["--model_source"] == "models:/petr4-sa-forecaster@challenger"
        )
        assert "canaryTrafficPercent" not in petr4["predictor"]
    else:  # Knative: this revision serves the challenger with 20%, the last rolled-out one the rest
        assert "canary" not in petr4
        assert petr4["predictor"]["canaryTrafficPercent"] == 20
        assert (
            predictor_args(petr4["predictor"])["--model_source"] == "models:/petr4-sa-forecaster@challenger"
        )
    for name in ("vale-forecaster", "itub4-sa-forecaster"):
        assert (
            "canary" not in isvcs[name]["spec"]
            and "canaryTrafficPercent" not in isvcs[name]["spec"]["predictor"]
        )
    monitor = by_kind(docs, "ServiceMonitor")["petr4-forecaster-predictor"]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert set(monitor["spec"]["selector"]["matchExpressions"][0]["values"]) == set(isvcs)
    rule = by_kind(docs, "PrometheusRule")["petr4-forecaster-alerts"]
    urls = [r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert all(u.startswith("https://runbooks.invalid/petr4-forecaster/runbook.md#") for u in urls)


def test_crd_objects_switch_off():
    values = {
        "kserve": {"enabled": False},
        "monitoring": {
            "serviceMonitor": {"enabled": False},
            "prometheusRule": {"enabled": False},
            "dashboard": {"enabled": False},
        },
    }
    kinds = {d["kind"] for d in render_docs(values)}
    assert not kinds & {"InferenceService", "ServiceMonitor", "PrometheusRule"}
    assert {"Deployment", "CronJob", "Job"} <= kinds


def test_external_mlflow():
    docs = render_docs({"mlflow": {"enabled": False, "externalUri": "https://mlflow.example.org:8443"}})
    assert "petr4-forecaster-mlflow" not in by_kind(docs, "Deployment")
    assert (
        by_kind(docs, "ConfigMap")["petr4-forecaster-config"]["data"]["tracking-uri"]
        == "https://mlflow.example.org:8443"
    )
    policy = by_kind(docs, "NetworkPolicy")["petr4-forecaster-predictor"]
    assert {"protocol": "TCP", "port": 8443} in policy["spec"]["egress"][0]["ports"]
    with pytest.raises(helm_python.HelmError, match="externalUri is required"):
        render({"mlflow": {"enabled": False}})


def test_notes_tell_how_to_call_the_model():
    notes = render(multi_values("Standard"))["petr4-forecaster/templates/NOTES.txt"]
    for name in ("petr4-sa-forecaster", "vale-forecaster", "itub4-sa-forecaster"):
        assert f"localhost:8080/v2/models/{name}/infer" in notes
    assert "port-forward" in notes and '"datatype":"FP64"' in notes


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
@pytest.mark.parametrize("values", [{}, "multi"], ids=["default", "multi"])
def test_lint_strict(kube, values):
    values = multi_values("Standard") if values == "multi" else values
    report = helm_python.lint(
        CHART, values, strict=True, namespace="petr4-forecaster", kube_version=f"v{kube}.0"
    )
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert not serious and not report["errors"], report


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"predictor": {"varient": "int8"}}, "varient"),
        ({"mlflw": {"enabled": False}}, "mlflw"),
        ({"models": [{"ticker": "PETR4.SA", "schedul": "0 22 * * 1-5"}]}, "schedul"),
        ({"models": [{"ticker": "PETR4.SA", "canary": {"enable": True}}]}, "enable"),
        ({"monitoring": {"serviceMonitor": {"enabeld": True}}}, "enabeld"),
        ({"predictor": {"resources": {"limit": {"cpu": "1"}}}}, "limit"),
        ({"kserve": {"deploymentMode": "Serverless"}}, "deploymentMode"),
        ({"models": [{"name": "PETR4"}]}, "ticker"),
    ],
)
def test_schema_rejects(values, where):
    with helm_python.Chart.load(CHART) as chart:
        chart.validate_schema({})
        chart.validate_schema(multi_values("Knative"))
        with pytest.raises(helm_python.HelmValuesError, match=where):
            chart.validate_schema(values)
    with pytest.raises(helm_python.HelmError):  # and an install/render refuses them too
        render(values)
