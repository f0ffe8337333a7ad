"""MLflow's read-only port in the chart: the MLflow pod runs nginx (NGINX's unprivileged image, the
configuration from the chart's ConfigMap) beside `mlflow server`; the readers (predictors with
delivery mlflow, the storage initializer, the monitors, one model or a universe) are pointed at it
and admitted on it only; the writers (training Jobs and CronJobs, their rollout pin) keep MLflow's
own port, which admits them only. An external MLflow has no proxy: the readers use
externalReadOnlyUri, else externalUri. (tests/integration/readonly_guard runs the rendered
configuration in Debian's nginx against a real MLflow.)"""

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
    deployment = by_kind(docs, "Deployment")[MLFLOW]
    spec = pod_spec(deployment)
    mlflow, sidecar = spec["containers"]
    assert mlflow["name"] == "mlflow" and sidecar["name"] == "readonly"
    assert sidecar["image"] == "docker.io/nginxinc/nginx-unprivileged:1.30.0-alpine"
    # nginx itself (not the image's entrypoint script, which would edit files): prefix on the
    # sidecar's own emptyDir, configuration from the ConfigMap, errors to stderr.
    assert sidecar["command"] == [
        "nginx",
        "-p",
        "/tmp/",
        "-c",
        "/etc/nginx/readonly/nginx.conf",
        "-e",
        "stderr",
    ]
    assert "args" not in sidecar
    assert sidecar["volumeMounts"] == [
        {"name": "readonly-config", "mountPath": "/etc/nginx/readonly", "readOnly": True},
        {"name": "readonly-tmp", "mountPath": "/tmp"},
    ]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["readonly-config"]["configMap"] == {"name": f"{MLFLOW}-readonly"}
    assert volumes["readonly-tmp"]["emptyDir"]["sizeLimit"]
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
    # The configuration: listens on the read-only port, forwards to MLflow's over loopback, and the
    # pods roll when it changes.
    conf = by_kind(docs, "ConfigMap")[f"{MLFLOW}-readonly"]["data"]["nginx.conf"]
    assert f"listen {READ};" in conf and f"proxy_pass http://127.0.0.1:{WRITE};" in conf
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert len(annotations["checksum/readonly-guard"]) == 64
    custom = render_docs(
        {"mlflow": {"readOnlyPort": 6001, "readOnlyGuard": {"clientHeaderTimeoutSeconds": 4}}}
    )
    config = by_kind(custom, "ConfigMap")[CONFIG]["data"]
    assert config["read-only-tracking-uri"] == f"http://{MLFLOW}:6001"
    (_, readers) = by_kind(custom, "NetworkPolicy")[MLFLOW]["spec"]["ingress"]
    assert readers["ports"] == [{"protocol": "TCP", "port": 6001}]
    custom_conf = by_kind(custom, "ConfigMap")[f"{MLFLOW}-readonly"]["data"]["nginx.conf"]
    assert "listen 6001;" in custom_conf and "client_header_timeout 4s;" in custom_conf
    custom_annotations = by_kind(custom, "Deployment")[MLFLOW]["spec"]["template"]["metadata"]["annotations"]
    assert custom_annotations["checksum/readonly-guard"] != annotations["checksum/readonly-guard"]
    pinned = render_docs(
        {"images": {"readOnlyGuard": {"registry": "mirror.example.org/hub", "digest": "sha256:" + "a" * 64}}}
    )
    (_, pinned_sidecar) = pod_spec(by_kind(pinned, "Deployment")[MLFLOW])["containers"]
    assert pinned_sidecar["image"] == "mirror.example.org/hub/nginxinc/nginx-unprivileged@sha256:" + "a" * 64


def test_the_guard_configuration_states_every_bound():
    """The values' bounds are the configuration's: timeouts, body limit, connection caps, the
    escaped JSON access log, and POST only to the three read-only searches (verbatim targets)."""
    conf = by_kind(render_docs(), "ConfigMap")[f"{MLFLOW}-readonly"]["data"]["nginx.conf"]
    for line in (
        "client_header_timeout 10s;", "client_body_timeout 10s;", "send_timeout 30s;",
        "keepalive_timeout 10s;", "client_max_body_size 64k;", "limit_conn per_client 32;",
        "limit_conn all_clients 256;", "worker_connections 1024;", "proxy_connect_timeout 5s;",
        "proxy_read_timeout 120s;", "access_log /dev/stdout readonly;", "log_format readonly escape=json",
        "proxy_max_temp_file_size 0;", "server_tokens off;", "pid nginx.pid;",
    ):  # fmt: skip
        assert line in conf, line
    assert 'map "$request_method $request_uri" $readonly_allowed' in conf
    posts = [line.strip() for line in conf.splitlines() if line.strip().startswith('"~^POST')]
    assert posts == [r'"~^POST /(ajax-)?api/2\.0/mlflow/(runs|experiments|logged-models)/search(\?|$)" 1;']
    assert "user " not in conf  # runs as the pod's non-root uid; no privilege to drop


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
