"""MLflow's read-only port in the chart: the MLflow pod runs `python -m registry_readonly` beside
`mlflow server`; the readers (predictors with delivery mlflow, the storage initializer, the monitors,
one model or a universe) are pointed at it and admitted on it only; the writers (training Jobs and
CronJobs, their rollout pin) keep MLflow's own port, which admits them only. An external MLflow has
no proxy: the readers use externalReadOnlyUri, else externalUri."""

from __future__ import annotations

import pytest

from tests.deploy.conftest import MODES, render_docs, universe_values

MLFLOW = "petr4-forecaster-mlflow"
WRITE, READ = 5000, 5001
CONFIG = "petr4-forecaster-config"


def by_kind(docs, kind) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_spec(doc: dict) -> dict:
    return doc["spec"].get("jobTemplate", doc)["spec"]["template"]["spec"]


def uri_keys(docs, component: str) -> dict[str, str]:
    """container name -> the config key its FORECASTER_TRACKING_URI comes from, over `component`'s pods."""
    out = {}
    for d in docs:
        if (
            d["kind"] in ("Deployment", "Job", "CronJob")
            and d["metadata"]["labels"].get("app.kubernetes.io/component") == component
        ):
            spec = pod_spec(d)
            for c in spec.get("initContainers", []) + spec["containers"]:
                for e in c.get("env", []):
                    if e["name"] == "FORECASTER_TRACKING_URI":
                        ref = e["valueFrom"]["configMapKeyRef"]
                        assert ref["name"] == CONFIG
                        out[f"{d['kind']}/{d['metadata']['name']}/{c['name']}"] = ref["key"]
    return out


def mlflow_ports(policy: dict) -> set[int]:
    return {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]} & {WRITE, READ}


@pytest.mark.parametrize("values", [{}, universe_values("Standard"), universe_values("Knative")])
def test_readers_use_the_read_only_port_and_writers_mlflows_own(values):
    docs = render_docs(values)
    config = by_kind(docs, "ConfigMap")[CONFIG]["data"]
    assert config["tracking-uri"] == f"http://{MLFLOW}:{WRITE}"
    assert config["read-only-tracking-uri"] == f"http://{MLFLOW}:{READ}"
    monitors = uri_keys(docs, "monitor")
    assert monitors and set(monitors.values()) == {"read-only-tracking-uri"}, monitors
    training = uri_keys(docs, "training")
    # training, the wait-for-MLflow init container and the rollout pin, in every Job and CronJob
    assert {k.split("/")[-1] for k in training} >= {"training", "wait-for-mlflow", "rollout"}, training
    assert set(training.values()) == {"tracking-uri"}, training
    # The storage initializer (delivery storageUri, the default) reads its own ConfigMap.
    storage = by_kind(docs, "ConfigMap")["petr4-forecaster-storage"]["data"]
    assert storage == {"tracking-uri": f"http://{MLFLOW}:{READ}"}
    policies = by_kind(docs, "NetworkPolicy")
    assert mlflow_ports(policies["petr4-forecaster-predictor"]) == {READ}
    assert mlflow_ports(policies["petr4-forecaster-monitor"]) == {READ}
    assert mlflow_ports(policies["petr4-forecaster-training"]) == {WRITE}


@pytest.mark.parametrize("mode", MODES)
def test_predictor_with_mlflow_delivery_reads_through_the_read_only_port(mode):
    docs = render_docs({"predictor": {"delivery": "mlflow"}, "kserve": {"deploymentMode": mode}})
    (isvc,) = by_kind(docs, "InferenceService").values()
    env = {e["name"]: e for e in isvc["spec"]["predictor"]["model"]["env"]}
    assert env["FORECASTER_TRACKING_URI"]["valueFrom"]["configMapKeyRef"] == {
        "name": CONFIG, "key": "read-only-tracking-uri",
    }  # fmt: skip
    assert "petr4-forecaster-storage" not in by_kind(docs, "ConfigMap")


def test_mlflow_policy_admits_writers_on_5000_and_readers_on_5001_only():
    policy = by_kind(render_docs(), "NetworkPolicy")[MLFLOW]["spec"]
    instance = {"key": "app.kubernetes.io/instance", "operator": "In", "values": ["petr4-forecaster"]}
    assert policy["ingress"] == [
        {
            "from": [{"podSelector": {"matchLabels": {
                "app.kubernetes.io/instance": "petr4-forecaster", "app.kubernetes.io/component": "training",
            }}}],
            "ports": [{"protocol": "TCP", "port": WRITE}],
        },
        {
            "from": [{"podSelector": {"matchExpressions": [
                instance,
                {"key": "app.kubernetes.io/component", "operator": "In", "values": ["predictor", "monitor"]},
            ]}}],
            "ports": [{"protocol": "TCP", "port": READ}],
        },
    ]  # fmt: skip
    assert policy["egress"] == []


def test_sidecar_serves_the_read_only_port():
    docs = render_docs()
    spec = pod_spec(by_kind(docs, "Deployment")[MLFLOW])
    mlflow, sidecar = spec["containers"]
    assert mlflow["name"] == "mlflow" and sidecar["name"] == "readonly"
    assert sidecar["image"] == "registry.example.org/ml/petr4-forecaster-serve:0.1.0"
    assert sidecar["command"] == ["python", "-m", "registry_readonly"]
    assert sidecar["args"] == ["--upstream", f"http://127.0.0.1:{WRITE}", "--port", str(READ)]
    assert sidecar["ports"] == [{"name": "http-readonly", "containerPort": READ, "protocol": "TCP"}]
    assert sidecar["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http-readonly"}
    assert sidecar["livenessProbe"]["tcpSocket"] == {"port": "http-readonly"}
    assert sidecar["securityContext"] == mlflow["securityContext"]
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    assert set(sidecar["resources"]) == {"requests", "limits"}
    service = by_kind(docs, "Service")[MLFLOW]["spec"]["ports"]
    assert [(p["name"], p["port"], p["targetPort"]) for p in service] == [
        ("http", WRITE, "http"), ("http-readonly", READ, "http-readonly"),
    ]  # fmt: skip
    custom = render_docs({"mlflow": {"readOnlyPort": 6001}})
    config = by_kind(custom, "ConfigMap")[CONFIG]["data"]
    assert config["read-only-tracking-uri"] == f"http://{MLFLOW}:6001"
    (_, readers) = by_kind(custom, "NetworkPolicy")[MLFLOW]["spec"]["ingress"]
    assert readers["ports"] == [{"protocol": "TCP", "port": 6001}]


@pytest.mark.parametrize(
    ("extra", "read_uri", "read_port"),
    [
        ({}, "https://mlflow.example.org:8443", 8443),
        ({"externalReadOnlyUri": "http://mlflow-ro.example.org"}, "http://mlflow-ro.example.org", 80),
    ],
)
def test_external_mlflow_has_no_proxy(extra, read_uri, read_port):
    external = {"enabled": False, "externalUri": "https://mlflow.example.org:8443", **extra}
    docs = render_docs({"mlflow": external})
    assert MLFLOW not in by_kind(docs, "Deployment") and MLFLOW not in by_kind(docs, "Service")
    config = by_kind(docs, "ConfigMap")[CONFIG]["data"]
    assert config["tracking-uri"] == "https://mlflow.example.org:8443"
    assert config["read-only-tracking-uri"] == read_uri
    assert by_kind(docs, "ConfigMap")["petr4-forecaster-storage"]["data"]["tracking-uri"] == read_uri
    policies = by_kind(docs, "NetworkPolicy")
    ports = {
        n: {p["port"] for r in policies[n]["spec"].get("egress", []) for p in r["ports"]} for n in policies
    }
    assert read_port in ports["petr4-forecaster-predictor"] and read_port in ports["petr4-forecaster-monitor"]
    assert 8443 in ports["petr4-forecaster-training"]
