"""The Helm chart: renders (default and multi-ticker + canary, both KServe modes), lints clean in
strict mode, and its values.schema.json rejects misspelled keys. The realized-accuracy monitor (one
per model) and the retraining webhook receiver: arguments, token reference, RBAC, switches."""

from __future__ import annotations

import copy
import json

import helm_python
import pytest

from tests.deploy.conftest import (
    CHART,
    KUBE_VERSIONS,
    MODES,
    MONITOR_KINDS,
    RETRAINER_KINDS,
    TEST_DEFAULTS,
    hatches_values,
    key,
    merged,
    multi_values,
    render,
    render_docs,
)


def training_container(pod: dict) -> dict:
    """The `training` container of a training pod (the last init container when the Job pins)."""
    (train,) = [c for c in pod.get("initContainers", []) + pod["containers"] if c["name"] == "training"]
    return train


def by_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def predictor_args(predictor: dict) -> dict[str, str]:
    args = predictor["model"]["args"]
    return dict(zip(args[::2], args[1::2], strict=True))


@pytest.mark.parametrize("mode", MODES)
def test_default_render(mode):
    docs = render_docs({"kserve": {"deploymentMode": mode}})
    kinds = sorted(key(d) for d in docs)
    assert len(kinds) == len(set(kinds)), "duplicate objects"
    isvc = by_kind(docs, "InferenceService")["petr4-sa-forecaster"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == mode
    predictor = isvc["spec"]["predictor"]
    # KServe-native delivery: the storage initializer puts the champion at /mnt/models, the revision
    # pins it (no alias polling, no MLflow client in the serving container).
    container = predictor["model"]
    assert container["storageUri"] == "models:/petr4-sa-forecaster@champion"
    assert container["runtime"] == "petr4-forecaster-predictor"
    assert container["modelFormat"] == {"name": "petr4-forecaster-bundle", "version": "1"}
    assert "containers" not in predictor
    assert predictor_args(predictor) == {
        "--model_name": "petr4-sa-forecaster",
        "--model-source": "/mnt/models",
        "--http_port": "8080",
        "--grpc_port": "8081",
        "--workers": "1",
        "--threads": "1",
        "--variant": "fp32",
        "--reload-interval-s": "0",
        # The online calibration state its monitor keeps (tests/deploy/test_calibration_chart.py).
        "--calibration-dir": "/etc/forecaster/calibration",
        "--calibration-max-age-s": "345600",
        "--calibration-poll-s": "60",
    }
    env = {e["name"]: e for e in container["env"]}
    assert env["PROMETHEUS_MULTIPROC_DIR"]["value"] == "/tmp/metrics"
    assert env["FORECASTER_PREDICTOR_CACHE_DIR"]["value"] == "/tmp/bundles"
    assert "FORECASTER_TRACKING_URI" not in env
    runtime = by_kind(docs, "ServingRuntime")["petr4-forecaster-predictor"]["spec"]
    assert runtime["supportedModelFormats"] == [
        {"name": "petr4-forecaster-bundle", "version": "1", "autoSelect": False}
    ]
    assert [c["name"] for c in runtime["containers"]] == ["kserve-container"]
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
    train = training_container(job["spec"]["template"]["spec"])
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
        "--skip-if-champion",
        "--require-promotion",
    ]
    assert job["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    # Bootstrap on every install and upgrade (idempotent), also under Argo CD (a Sync hook).
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade"
    assert annotations["argocd.argoproj.io/hook"] == "Sync"
    cron = by_kind(docs, "CronJob")["petr4-forecaster-retrain-petr4-sa"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid" and cron["spec"]["schedule"] == "30 21 * * 1-5"
    # The retraining run is the bootstrap run without its two flags (a refusal there is normal).
    retrain = copy.deepcopy(job["spec"]["template"])
    training_container(retrain["spec"])["args"] = train["args"][:-2]
    assert cron["spec"]["jobTemplate"]["spec"]["template"] == retrain
    for sa in by_kind(docs, "ServiceAccount").values():
        assert sa["automountServiceAccountToken"] is False
    # Only the retrainer, the training Jobs' pin and the monitors (the calibration ConfigMaps) call the
    # Kubernetes API (test_retrainer_role_is_exactly_what_it_calls, tests/deploy/test_rollout_chart.py,
    # tests/deploy/test_calibration_chart.py).
    roles = {"petr4-forecaster-retrainer", "petr4-forecaster-rollout", "petr4-forecaster-monitor"}
    assert set(by_kind(docs, "Role")) == set(by_kind(docs, "RoleBinding")) == roles
    assert not by_kind(docs, "Secret"), "the chart never carries a secret value"


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
    assert vale["model"]["resources"]["limits"] == {"cpu": "2", "memory": "2Gi"}
    assert vale["model"]["image"] == "registry.invalid/ml/petr4-forecaster-serve:0.1.0"
    assert vale["model"]["storageUri"] == "models:/vale-forecaster/7", "a pinned version"
    job = by_kind(docs, "Job")["petr4-forecaster-train-itub4-sa"]["spec"]["template"]["spec"]
    train = training_container(job)
    assert train["image"].startswith("registry.invalid/ml/petr4-forecaster-train@sha256:")
    assert train["resources"]["limits"]["memory"] == "6Gi"
    assert train["args"][-2:] == ["--max-epochs", "30"]
    assert job["imagePullSecrets"] == [{"name": "regcred"}]
    env = {e["name"]: e for e in train["env"]}
    assert env["MLFLOW_TRACKING_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "mlflow-auth",
        "key": "password",
    }
    petr4 = isvcs["petr4-sa-forecaster"]["spec"]
    if mode == "Standard":  # spec.canary: a second, named predictor on the challenger alias
        assert petr4["predictor"]["model"]["storageUri"] == "models:/petr4-sa-forecaster@champion"
        (canary,) = petr4["canary"]
        assert canary["trafficPercent"] == 20
        assert canary["predictor"]["name"] == "canary"
        assert canary["predictor"]["model"]["storageUri"] == "models:/petr4-sa-forecaster@challenger"
        assert "canaryTrafficPercent" not in petr4["predictor"]
    else:  # Knative: this revision serves the challenger with 20%, the last rolled-out one the rest
        assert "canary" not in petr4
        assert petr4["predictor"]["canaryTrafficPercent"] == 20
        assert petr4["predictor"]["model"]["storageUri"] == "models:/petr4-sa-forecaster@challenger"
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
    # The webhook token: generated where the user sees it, and how to read it back.
    assert "TOKEN=$(openssl rand -hex 32)" in notes and '--from-literal=token="$TOKEN"' in notes
    assert "get secret petr4-forecaster-retrainer-token -o jsonpath='{.data.token}' | base64 -d" in notes
    assert "logs job/petr4-forecaster-train-<model>" in notes and "-c storage-initializer" in notes
    assert "helm test petr4-forecaster -n petr4-forecaster" in notes
    assert "pod-security.kubernetes.io/enforce=restricted" in notes, "offline: the reminder"
    bare = render({"images": {"registry": "r.example/ml"}}, defaults=False)[
        "petr4-forecaster/templates/NOTES.txt"
    ]
    assert "no ServiceMonitor was created" in bare and "no ServiceMonitor" not in notes


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
@pytest.mark.parametrize("values", [{}, "multi"], ids=["default", "multi"])
def test_lint_strict(kube, values):
    values = multi_values("Standard") if values == "multi" else merged(TEST_DEFAULTS, values)
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
        ({"monitor": {"enable": False}}, "enable"),
        ({"monitor": {"intervalSecond": 60}}, "intervalSecond"),
        ({"monitor": {"internetEgress": {"port": [443]}}}, "port"),
        ({"monitor": {"sessions": 0}}, "sessions"),
        ({"retrainer": {"enabeld": False}}, "enabeld"),
        ({"retrainer": {"tokenSecret": {"nmae": "x"}}}, "nmae"),
        ({"retrainer": {"tokenSecret": {"name": "x", "value": "s3cret"}}}, "value"),
        ({"retrainer": {"alertmanager": {"podLabel": {"app": "x"}}}}, "podLabel"),
        ({"retrainer": {"apiServerEgress": {"cidrs": "10.0.0.1/32"}}}, "cidrs"),
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


# --- realized-accuracy monitor and retraining webhook receiver -----------------------------------
MULTI_MODELS = {
    "petr4-sa-forecaster": "PETR4.SA",
    "vale-forecaster": "VALE3.SA",
    "itub4-sa-forecaster": "ITUB4.SA",
}


def component(docs, name: str) -> set[tuple[str, str]]:
    """(kind, name) of the objects whose component label is `name`."""
    return {
        key(d) for d in docs if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == name
    }


def args_of(container: dict) -> dict[str, str]:
    args = container["args"]
    return dict(zip(args[::2], args[1::2], strict=True))


def monitor_containers(docs) -> dict[str, dict]:
    """model label -> the monitor container of that model's Deployment."""
    out = {}
    for d in by_kind(docs, "Deployment").values():
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "monitor":
            (container,) = d["spec"]["template"]["spec"]["containers"]
            out[d["metadata"]["labels"]["petr4-forecaster/model"]] = container
    return out


def retrainer_env(docs) -> dict[str, dict]:
    deployment = by_kind(docs, "Deployment")["petr4-forecaster-retrainer"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in container["env"]}


def assert_hardened(pod: dict, container: dict) -> None:
    assert (
        pod["securityContext"]["runAsNonRoot"]
        and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    )
    security = container["securityContext"]
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"] and security["privileged"] is False
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert any(v["name"] == "tmp" and "emptyDir" in v for v in pod["volumes"])
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False


def test_monitor_render():
    docs = render_docs()
    (container,) = monitor_containers(docs).values()
    deployment = by_kind(docs, "Deployment")["petr4-forecaster-monitor-petr4-sa"]
    pod = deployment["spec"]["template"]["spec"]
    assert container["image"] == "registry.example.org/ml/petr4-forecaster-monitor:0.1.0", "no torch"
    assert container["command"] == ["python", "-m", "monitor"]
    isvc = by_kind(docs, "InferenceService")["petr4-sa-forecaster"]
    assert args_of(container) == {
        "--model-source": "models:/petr4-sa-forecaster@champion",
        "--tracking-uri": "$(FORECASTER_TRACKING_URI)",
        "--model-name": predictor_args(isvc["spec"]["predictor"])["--model_name"],
        "--source": "yfinance",
        "--ticker": "PETR4.SA",
        "--sessions": "20",
        "--interval-s": "3600",
        "--port": "9090",
        "--calendar": "BVMF",
        "--calibration-configmap": "petr4-forecaster-calibration-{model}",
    }
    env = {e["name"]: e for e in container["env"]}
    assert env["FORECASTER_TRACKING_URI"]["valueFrom"]["configMapKeyRef"]["key"] == "read-only-tracking-uri"
    assert env["HOME"]["value"] == "/tmp"
    assert container["ports"] == [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    assert_hardened(pod, container)
    assert deployment["spec"]["replicas"] == 1
    sa = by_kind(docs, "ServiceAccount")[pod["serviceAccountName"]]
    assert sa["automountServiceAccountToken"] is False
    service = by_kind(docs, "Service")["petr4-forecaster-monitor-petr4-sa"]
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    monitors = by_kind(docs, "ServiceMonitor")
    scrape = monitors["petr4-forecaster-monitor"]
    predictor_release = monitors["petr4-forecaster-predictor"]["metadata"]["labels"]["release"]
    assert scrape["metadata"]["labels"]["release"] == predictor_release == "kube-prometheus-stack"
    assert scrape["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in scrape["spec"]["endpoints"]] == ["metrics"]
    policies = by_kind(docs, "NetworkPolicy")
    policy = policies["petr4-forecaster-monitor"]["spec"]
    assert (
        policy["podSelector"]["matchLabels"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    # Prometheus reaches the monitor's 9090 from where it reaches the predictors' metrics, no one else.
    rules = policies["petr4-forecaster-predictor"]["spec"]["ingress"]
    clients, scrape = rules[0], rules[-1]
    prometheus = [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }
    ]
    assert scrape == {"from": prometheus, "ports": [{"protocol": "TCP", "port": 8080}]}
    assert {"namespaceSelector": {}} not in clients["from"] and clients["from"]
    assert policy["ingress"] == [{"from": prometheus, "ports": [{"protocol": "TCP", "port": 9090}]}]
    # MLflow: its own port from this release's training pods only, the read-only port from its
    # predictor and monitor pods only (tests/deploy/test_readonly_chart.py checks the split).
    writers, readers = policies["petr4-forecaster-mlflow"]["spec"]["ingress"]
    assert writers["ports"] == [{"protocol": "TCP", "port": 5000}]
    assert readers["ports"] == [{"protocol": "TCP", "port": 5001}]
    assert readers["from"] == [{
        "podSelector": {
            "matchExpressions": [
                {"key": "app.kubernetes.io/instance", "operator": "In", "values": ["petr4-forecaster"]},
                {"key": "app.kubernetes.io/component", "operator": "In", "values": ["predictor", "monitor"]},
            ]
        }
    }]  # fmt: skip
    egress_ports = {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]}
    # MLflow's read-only port, DNS, Yahoo and the API server (the calibration ConfigMaps: 443, 6443).
    assert egress_ports == {("TCP", 5001), ("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 6443)}


def test_retrainer_render():
    docs = render_docs()
    deployment = by_kind(docs, "Deployment")["petr4-forecaster-retrainer"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.example.org/ml/petr4-forecaster-serve:0.1.0", "torch-free"
    assert container["command"] == ["python", "-m", "retrainer"] and "args" not in container
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    env = retrainer_env(docs)
    assert set(env) == {
        "FORECASTER_RETRAINER_TOKEN",
        "FORECASTER_RETRAINER_NAMESPACE",
        "FORECASTER_RETRAINER_CRONJOBS",
        "FORECASTER_RETRAINER_PORT",
        "HOME",
    }
    assert env["FORECASTER_RETRAINER_NAMESPACE"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.namespace"}
    }
    assert env["FORECASTER_RETRAINER_PORT"]["value"] == "8080"
    assert json.loads(env["FORECASTER_RETRAINER_CRONJOBS"]["value"]) == {
        "petr4-sa-forecaster": "petr4-forecaster-retrain-petr4-sa"
    }
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert_hardened(pod, container)
    # The token it calls the API with: projected explicitly where the receiver reads it.
    mount = next(m for m in container["volumeMounts"] if m["name"] == "kube-api-access")
    assert mount == {
        "name": "kube-api-access",
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
        "readOnly": True,
    }
    (volume,) = [v for v in pod["volumes"] if v["name"] == "kube-api-access"]
    sources = volume["projected"]["sources"]
    assert sources[0]["serviceAccountToken"]["path"] == "token"
    assert sources[1]["configMap"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
    assert pod["serviceAccountName"] == "petr4-forecaster-retrainer"
    service = by_kind(docs, "Service")["petr4-forecaster-retrainer"]
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    policy = by_kind(docs, "NetworkPolicy")["petr4-forecaster-retrainer"]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [
        {
            "from": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "alertmanager"}},
                }
            ],
            "ports": [{"protocol": "TCP", "port": 8080}],
        }
    ]
    egress_ports = {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress_ports == {("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 6443)}
    custom = render_docs(
        {
            "retrainer": {
                # Helm merges maps with the defaults: null drops a default label.
                "alertmanager": {
                    "namespaceLabels": {"kubernetes.io/metadata.name": None, "team": "obs"},
                    "podLabels": {"app.kubernetes.io/name": None, "alertmanager": "main"},
                },
                "apiServerEgress": {"cidr": "10.0.0.1/32", "ports": [6443]},
            }
        }
    )
    spec = by_kind(custom, "NetworkPolicy")["petr4-forecaster-retrainer"]["spec"]
    assert spec["ingress"][0]["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"team": "obs"}},
            "podSelector": {"matchLabels": {"alertmanager": "main"}},
        }
    ]
    assert spec["egress"][-1] == {
        "to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}],
        "ports": [{"protocol": "TCP", "port": 6443}],
    }


def rules_of(role: dict) -> set[tuple]:
    """(apiGroup, resource, verb, resourceNames) for every grant of the Role."""
    return {
        (group, resource, verb, tuple(sorted(rule.get("resourceNames", []))))
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.mark.parametrize("values", [{}, "multi"], ids=["default", "multi"])
def test_retrainer_role_is_exactly_what_it_calls(values):
    """GET cronjobs/<name> (this release's retraining CronJobs only), list and create jobs: nothing else."""
    docs = render_docs(multi_values("Standard") if values == "multi" else values)
    cronjobs = tuple(sorted(by_kind(docs, "CronJob")))
    assert cronjobs and all(c.startswith("petr4-forecaster-retrain-") for c in cronjobs)
    role = by_kind(docs, "Role")["petr4-forecaster-retrainer"]
    assert rules_of(role) == {
        ("batch", "cronjobs", "get", cronjobs),
        ("batch", "jobs", "list", ()),
        ("batch", "jobs", "create", ()),
    }
    binding = by_kind(docs, "RoleBinding")["petr4-forecaster-retrainer"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "petr4-forecaster-retrainer",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "petr4-forecaster-retrainer", "namespace": "petr4-forecaster"}
    ]
    # The CronJobs it may start keep refusing to overlap with a running Job.
    assert all(c["spec"]["concurrencyPolicy"] == "Forbid" for c in by_kind(docs, "CronJob").values())


def test_every_retraining_job_carries_the_label_the_retrainer_lists_by(all_variants):
    """The receiver lists a CronJob's Jobs with the selector `forecaster.io/cronjob=<name>`: every
    Job a CronJob makes (scheduled, `kubectl create job --from`, or the receiver's own) carries it."""
    from retrainer.kube import CRONJOB_LABEL

    checked = 0
    for docs in all_variants.values():
        for name, cron in by_kind(docs, "CronJob").items():
            assert cron["spec"]["jobTemplate"]["metadata"]["labels"][CRONJOB_LABEL] == name
            checked += 1
    assert checked


def test_retrainer_token_is_a_secret_reference():
    token = retrainer_env(render_docs())["FORECASTER_RETRAINER_TOKEN"]
    assert token == {
        "name": "FORECASTER_RETRAINER_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "petr4-forecaster-retrainer-token", "key": "token"}},
    }
    docs = render_docs({"retrainer": {"tokenSecret": {"name": "am-webhook", "key": "bearer"}}})
    token = retrainer_env(docs)["FORECASTER_RETRAINER_TOKEN"]
    assert (
        token["valueFrom"] == {"secretKeyRef": {"name": "am-webhook", "key": "bearer"}}
        and "value" not in token
    )
    assert not by_kind(docs, "Secret")


@pytest.mark.parametrize("mode", MODES)
def test_multi_ticker_monitors_and_cronjob_map(mode):
    docs = render_docs(multi_values(mode))
    containers = monitor_containers(docs)
    assert set(containers) == set(MULTI_MODELS) == set(by_kind(docs, "InferenceService"))
    for model, ticker in MULTI_MODELS.items():
        args = args_of(containers[model])
        assert args["--model-name"] == model and args["--ticker"] == ticker
        assert args["--model-source"] == f"models:/{model}@champion"
        assert containers[model]["image"] == "registry.invalid/ml/petr4-forecaster-monitor:0.1.0"
    services = {
        n
        for n, s in by_kind(docs, "Service").items()
        if s["metadata"]["labels"]["app.kubernetes.io/component"] == "monitor"
    }
    assert services == {f"petr4-forecaster-monitor-{s}" for s in ("petr4-sa", "vale", "itub4-sa")}
    assert (
        by_kind(docs, "ServiceMonitor")["petr4-forecaster-monitor"]["metadata"]["labels"]["release"]
        == "prometheus"
    )
    cronjobs = {
        c["metadata"]["labels"]["petr4-forecaster/model"]: name
        for name, c in by_kind(docs, "CronJob").items()
    }
    assert json.loads(retrainer_env(docs)["FORECASTER_RETRAINER_CRONJOBS"]["value"]) == cronjobs
    assert set(cronjobs) == set(MULTI_MODELS)


def test_monitor_and_retrainer_switch_off():
    everything = render_docs()
    monitor, retrainer = component(everything, "monitor"), component(everything, "retrainer")
    assert {k for k, _ in monitor} == set(MONITOR_KINDS) and {k for k, _ in retrainer} == set(RETRAINER_KINDS)
    without_monitor = {key(d) for d in render_docs({"monitor": {"enabled": False}})}
    calibration = component(everything, "calibration")  # its ConfigMaps: the monitor writes them
    assert calibration and not without_monitor & (monitor | calibration)
    assert without_monitor == {key(d) for d in everything} - monitor - calibration
    without_retrainer = {key(d) for d in render_docs({"retrainer": {"enabled": False}})}
    assert not without_retrainer & retrainer and without_retrainer == {key(d) for d in everything} - retrainer
    # No CronJobs, nothing to start: the retrainer goes with training.
    assert not component(render_docs({"training": {"enabled": False}}), "retrainer")
    # The monitor's ServiceMonitor follows the chart's ServiceMonitor switch.
    docs = render_docs({"monitoring": {"serviceMonitor": {"enabled": False}}})
    assert not by_kind(docs, "ServiceMonitor") and ("Deployment", "petr4-forecaster-monitor-petr4-sa") in {
        key(d) for d in docs
    }
    # And the chart's NetworkPolicy switch.
    docs = render_docs({"networkPolicy": {"enabled": False}})
    assert not by_kind(docs, "NetworkPolicy")


# --- defaults that fail early or work -------------------------------------------------------------
def test_defaults_that_fail_early_or_work():
    """No registry: refused at template time with the way out. The prometheus-operator objects
    follow `.Capabilities.APIVersions.Has` by default (false offline, as on a cluster without the
    CRDs: the install works without them), and true/false force them."""
    with pytest.raises(helm_python.HelmError, match=r"images.registry is required: .*--set images.registry="):
        render({}, defaults=False)
    bare = {"images": {"registry": "registry.example.org/ml/"}}
    docs = render_docs(bare, defaults=False)
    assert not {d["kind"] for d in docs} & {"ServiceMonitor", "PrometheusRule", "AlertmanagerConfig"}
    assert by_kind(docs, "Deployment")["petr4-forecaster-retrainer"]["spec"]["template"]["spec"][
        "containers"
    ][0]["image"] == ("registry.example.org/ml/petr4-forecaster-serve:0.1.0")
    forced = render_docs(
        {**bare, "monitoring": {**TEST_DEFAULTS["monitoring"]}},
        defaults=False,
    )
    assert set(by_kind(forced, "ServiceMonitor")) == {
        "petr4-forecaster-predictor",
        "petr4-forecaster-monitor",
    }
    assert set(by_kind(forced, "PrometheusRule")) == {
        "petr4-forecaster-alerts",
        "petr4-forecaster-alerts-marketdata",  # the transformer's (transformer.enabled)
    }
    off = render_docs(
        {"monitoring": {"serviceMonitor": {"enabled": False}, "prometheusRule": {"enabled": False}}}
    )
    assert not by_kind(off, "ServiceMonitor") and not by_kind(off, "PrometheusRule")


# --- escape hatches on every workload -------------------------------------------------------------
def workload_pods(docs) -> dict[str, tuple[dict, dict, dict]]:
    """(kind/name) -> (pod metadata, pod spec, main container) of every workload, predictors included."""
    out = {}
    for d in docs:
        name = f"{d['kind']}/{d['metadata']['name']}"
        if d["kind"] in ("Deployment", "Job"):
            template = d["spec"]["template"]
            out[name] = (template["metadata"], template["spec"], template["spec"]["containers"][0])
        elif d["kind"] == "CronJob":
            template = d["spec"]["jobTemplate"]["spec"]["template"]
            out[name] = (template["metadata"], template["spec"], template["spec"]["containers"][0])
        elif d["kind"] == "InferenceService":
            predictors = [d["spec"]["predictor"], *(c["predictor"] for c in d["spec"].get("canary", []))]
            for i, p in enumerate(predictors):
                meta = {"labels": p["labels"], "annotations": p.get("annotations", {})}
                out[f"{name}#{i}"] = (meta, p, p["model"])
    return out


def test_escape_hatches_reach_every_workload():
    values = {**hatches_values(), "securityContext": {"runAsUser": None, "runAsGroup": None, "fsGroup": None}}
    docs = render_docs(values)
    pods = workload_pods(docs)
    kinds = {n.split("/")[0] for n in pods}
    assert kinds == {"Deployment", "Job", "CronJob", "InferenceService"}
    for name, (meta, spec, container) in pods.items():
        assert meta["labels"]["team"] == "quant", name
        extra = {"checksum/readonly-guard"} if name == "Deployment/petr4-forecaster-mlflow" else set()
        assert set(meta["annotations"]) - set(values["podAnnotations"]) == extra, name
        assert values["podAnnotations"].items() <= meta["annotations"].items(), name
        for field in ("nodeSelector", "tolerations", "affinity", "priorityClassName"):
            assert spec[field] == values[field], (name, field)
        env = {e["name"]: e for e in container["env"]}
        assert env["HTTPS_PROXY"]["value"] == "http://proxy.example.org:3128", name
        assert container["envFrom"] == [{"configMapRef": {"name": "site-env"}}], name
        # runAsUser left to the platform (OpenShift restricted-v2), the rest of the hardening kept.
        security = container["securityContext"]
        assert "runAsUser" not in security and security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
        assert "runAsUser" not in spec.get("securityContext", {}) and "fsGroup" not in spec.get(
            "securityContext", {}
        )
    # Selectors still select: the extra label sits beside the chart's own.
    for deployment in by_kind(docs, "Deployment").values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (isvc,) = by_kind(docs, "InferenceService").values()
    token = {e["name"]: e for e in isvc["spec"]["predictor"]["model"]["env"]}[
        "FORECASTER_PREDICTOR_API_TOKEN"
    ]
    assert token == {
        "name": "FORECASTER_PREDICTOR_API_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "forecaster-api", "key": "bearer"}},
    }
    assert not by_kind(docs, "Secret")
    for name, policy in by_kind(docs, "NetworkPolicy").items():
        if name.endswith("default-deny"):
            continue
        spec = policy["spec"]
        assert values["networkPolicy"]["extraEgress"][0] in spec["egress"], name
        assert values["networkPolicy"]["extraIngress"][0] in spec["ingress"], name
        dns = {
            (p["protocol"], p["port"]) for r in spec["egress"] for p in r["ports"] if p["port"] in (53, 5353)
        }
        assert name.endswith("-mlflow") or dns == {("UDP", 53), ("TCP", 53), ("UDP", 5353), ("TCP", 5353)}, (
            name
        )
    # Without them: nothing of the kind in any pod, and no token.
    for name, (_meta, spec, container) in workload_pods(render_docs()).items():
        assert not {"nodeSelector", "tolerations", "affinity", "priorityClassName"} & set(spec), name
        assert "envFrom" not in container and "FORECASTER_PREDICTOR_API_TOKEN" not in {
            e["name"] for e in container["env"]
        }


def test_helm_test_pods():
    """One `helm test` Pod per model: hardened, through the predictor's Service, admitted by the
    predictors' NetworkPolicy and allowed out by its own (files/helm_test.py runs against a real
    predictor in tests/integration/storage)."""
    docs = render_docs(multi_values("Standard"))
    pods = {d["metadata"]["labels"]["petr4-forecaster/model"]: d for d in docs if d["kind"] == "Pod"}
    assert set(pods) == set(MULTI_MODELS)
    pod = pods["vale-forecaster"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["FORECASTER_TEST_URL"] == "http://vale-forecaster-predictor.petr4-forecaster.svc.cluster.local"
    assert env["FORECASTER_TEST_MODEL"] == "vale-forecaster" and env["FORECASTER_TEST_WINDOW"] == "60"
    assert container["args"][0].strip() == (CHART / "files" / "helm_test.py").read_text().strip()
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] and security["capabilities"]["drop"] == ["ALL"]
    labels = pod["metadata"]["labels"]
    policies = by_kind(docs, "NetworkPolicy")
    admitted = [
        r
        for r in policies["petr4-forecaster-predictor"]["spec"]["ingress"]
        if any(p.get("podSelector", {}).get("matchLabels", {}).items() <= labels.items() for p in r["from"])
        and all("namespaceSelector" not in p for p in r["from"])
    ]
    assert admitted and {"protocol": "TCP", "port": 8080} in admitted[0]["ports"]
    own = policies["petr4-forecaster-test"]["spec"]
    assert own["podSelector"]["matchLabels"].items() <= labels.items()
    assert not render_docs({"helmTest": {"enabled": False}}) or not [
        d for d in render_docs({"helmTest": {"enabled": False}}) if d["kind"] == "Pod"
    ]
