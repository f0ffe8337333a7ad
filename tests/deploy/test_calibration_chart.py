"""The online calibration state's deployment (values `calibration`): one ConfigMap per model, created
without data; the monitor's Role (get and patch on exactly those names), token, namespace, API-server
egress and flag; every predictor (single model, canary, universe shard) mounting its models'
ConfigMaps read-only and reading them with the flags the chart passes. The rendered args are parsed
by the real settings classes, and the monitor's ConfigMap store runs against the shared fake
Kubernetes API holding the rendered ConfigMaps under the rendered Role's resourceNames."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import helm_python
import numpy as np
import pytest

from bundle.online import History, ModelIdentity, OnlineState, initial_state
from monitor.settings import MonitorSettings
from monitor.state_configmap import ConfigMapStore, StoreError
from retrainer.kube import KubeClient
from retrainer.settings import KubeAccess
from tests.deploy.conftest import CHART, MODES, NAMESPACE, multi_values, render, render_docs, universe_values
from tests.kube_api import SA_TOKEN, KubeApi

MOUNT = "/etc/forecaster/calibration"
PATTERN = "petr4-forecaster-calibration-{model}"
TRACKING = "http://mlflow.example:5000"


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def calibration_configmaps(docs: list[dict]) -> dict[str, dict]:
    return {
        name: d
        for name, d in by_kind(docs, "ConfigMap").items()
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == "calibration"
    }


def predictors(docs: list[dict]) -> dict[str, dict]:
    """Every predictor spec (a canary's too), by `<isvc>` or `<isvc>/canary`."""
    out = {}
    for name, isvc in by_kind(docs, "InferenceService").items():
        out[name] = isvc["spec"]["predictor"]
        for canary in isvc["spec"].get("canary", []):
            out[f"{name}/canary"] = canary["predictor"]
    return out


def mounted(predictor: dict) -> list[str]:
    (volume,) = [v for v in predictor["volumes"] if v["name"] == "calibration"]
    sources = volume["projected"]["sources"]
    assert all(s["configMap"]["optional"] is True for s in sources), "a state not written yet is no error"
    assert {"name": "calibration", "mountPath": MOUNT, "readOnly": True} in predictor["model"]["volumeMounts"]
    return [s["configMap"]["name"] for s in sources]


def args(container: dict, **env: str) -> list[str]:
    """Kubernetes' $(VAR) expansion of the container's args."""
    values = {"FORECASTER_TRACKING_URI": TRACKING, **env}
    out = []
    for arg in container["args"]:
        expanded = arg
        for name, value in values.items():
            expanded = expanded.replace(f"$({name})", value)
        out.append(expanded)
    return out


def monitor_settings(deployment: dict) -> MonitorSettings:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["FORECASTER_MONITOR_NAMESPACE"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.namespace"}
    }
    plain = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    return MonitorSettings(_cli_parse_args=args(container), namespace=NAMESPACE, **{
        k.removeprefix("FORECASTER_MONITOR_").lower(): v for k, v in plain.items()
        if k.startswith("FORECASTER_MONITOR_")
    })  # fmt: skip


@pytest.mark.parametrize("mode", MODES)
def test_one_configmap_per_model_without_data(mode):
    docs = render_docs(multi_values(mode))
    configmaps = calibration_configmaps(docs)
    models = {name for name in by_kind(docs, "InferenceService")}
    assert set(configmaps) == {PATTERN.replace("{model}", m) for m in models}
    for name, configmap in configmaps.items():
        # No data or binaryData: an upgrade's three-way merge then never touches what the monitor wrote.
        assert set(configmap) == {"apiVersion", "kind", "metadata"}
        assert name == PATTERN.replace("{model}", configmap["metadata"]["labels"]["petr4-forecaster/model"])


@pytest.mark.parametrize("mode", MODES)
def test_every_predictor_mounts_its_models_state_and_reads_it_with_the_chart_flags(mode):
    from predictor.__main__ import parse

    docs = render_docs(multi_values(mode))
    for name, predictor in predictors(docs).items():
        isvc = name.split("/")[0]
        assert mounted(predictor) == [PATTERN.replace("{model}", isvc)]
        _, settings = parse(args(predictor["model"]))
        assert str(settings.calibration_dir) == MOUNT
        assert (settings.calibration_max_age_s, settings.calibration_poll_s) == (345600, 60)


def test_a_universe_shard_mounts_the_state_of_each_model_it_serves():
    docs = render_docs(universe_values("Standard"))
    shards = {n: p for n, p in predictors(docs).items() if n.startswith("ibov-")}
    assert mounted(shards["ibov-0"]) == [PATTERN.replace("{model}", m) for m in
                                         ("vale3-sa-forecaster", "itub4-sa-forecaster")]  # fmt: skip
    everything = [m for shard in shards.values() for m in mounted(shard)]
    assert len(everything) == 5 and set(everything) <= set(calibration_configmaps(docs))


@pytest.mark.parametrize("values", [{}, universe_values("Knative")])
def test_the_monitor_role_is_exactly_get_and_patch_on_the_calibration_configmaps(values):
    docs = render_docs(values)
    role = by_kind(docs, "Role")["petr4-forecaster-monitor"]
    assert role["rules"] == [{
        "apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "patch"],
        "resourceNames": list(calibration_configmaps(docs)),
    }]  # fmt: skip
    binding = by_kind(docs, "RoleBinding")["petr4-forecaster-monitor"]
    assert binding["roleRef"]["name"] == "petr4-forecaster-monitor"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "petr4-forecaster-monitor", "namespace": NAMESPACE}
    ]
    for name, deployment in by_kind(docs, "Deployment").items():
        if not name.startswith("petr4-forecaster-monitor-"):
            continue
        pod = deployment["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "petr4-forecaster-monitor"
        assert pod["automountServiceAccountToken"] is False  # projected explicitly instead
        (container,) = pod["containers"]
        assert {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                "readOnly": True} in container["volumeMounts"]  # fmt: skip
        (token,) = [v for v in pod["volumes"] if v["name"] == "kube-api-access"]
        assert token["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] == 3600
        assert monitor_settings(deployment).calibration_configmap == PATTERN
    policy = by_kind(docs, "NetworkPolicy")["petr4-forecaster-monitor"]["spec"]
    api_server = [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 6443}]
    assert {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": api_server} in policy["egress"]


@pytest.mark.parametrize("off", [{"calibration": {"enabled": False}}, {"monitor": {"enabled": False}}])
def test_without_calibration_nothing_of_it_is_rendered(off):
    docs = render_docs(off)
    assert not calibration_configmaps(docs)
    assert "petr4-forecaster-monitor" not in by_kind(docs, "Role")
    for predictor in predictors(docs).values():
        assert "calibration" not in {v["name"] for v in predictor["volumes"]}
        assert not any(a.startswith("--calibration") for a in predictor["model"]["args"])
    for name, deployment in by_kind(docs, "Deployment").items():
        if name.startswith("petr4-forecaster-monitor-"):
            pod = deployment["spec"]["template"]["spec"]
            assert "kube-api-access" not in {v["name"] for v in pod["volumes"]}
            assert "--calibration-configmap" not in pod["containers"][0]["args"]


def test_the_bound_and_the_poll_are_values():
    docs = render_docs({"calibration": {"maxAgeSeconds": 86400, "pollSeconds": 15}})
    model = by_kind(docs, "InferenceService")["petr4-sa-forecaster"]["spec"]["predictor"]["model"]
    flags = dict(zip(model["args"][::2], model["args"][1::2], strict=True))
    assert (flags["--calibration-max-age-s"], flags["--calibration-poll-s"]) == ("86400", "15")


@pytest.mark.parametrize(("values", "where"), [
    ({"calibration": {"enable": True}}, "enable"),
    ({"calibration": {"maxAgeSeconds": 0}}, "maxAgeSeconds"),
    ({"calibration": {"pollSeconds": -1}}, "pollSeconds"),
    ({"monitor": {"apiServerEgress": {"cidrs": "10.0.0.1/32"}}}, "cidrs"),
    ({"monitor": {"calendar": "b3 exchange"}}, "calendar"),
])  # fmt: skip
def test_schema_rejects(values, where):
    with helm_python.Chart.load(CHART) as chart, pytest.raises(helm_python.HelmValuesError, match=where):
        chart.validate_schema(values)
    with pytest.raises(helm_python.HelmError):
        render(values)


# -- the store against the rendered RBAC ------------------------------------------------------------
def a_state(model: str) -> OnlineState:
    rng = np.random.default_rng(1)
    n = 400
    history = History([date(2020, 1, 1) + timedelta(days=i) for i in range(n)],
                      30 * np.exp(np.cumsum(rng.standard_normal(n) * 0.01)))  # fmt: skip
    identity = ModelIdentity(model_name=model, model_version="7", bundle_sha256="ab" * 32)
    return initial_state(identity, history, np.r_[np.nan, history.close[:-1]], window=60, sigma_floor=1e-4,
                         now=datetime(2021, 2, 4, 22, tzinfo=UTC))  # fmt: skip


def test_the_monitor_writes_every_models_configmap_under_the_rendered_role(tmp_path):
    """The rendered ConfigMaps seeded in the fake API with the rendered Role's resourceNames; the
    universe monitor's own settings (parsed from its rendered args) write each ticker's state into
    the ConfigMap its shard mounts, a 409 on the way is read again, and nothing else is writable."""
    docs = render_docs(universe_values("Standard"))
    api = KubeApi(user=f"system:serviceaccount:{NAMESPACE}:petr4-forecaster-monitor")
    try:
        for name, configmap in calibration_configmaps(docs).items():
            api.collection("v1", "configmaps", NAMESPACE)[name] = {**configmap, "metadata": {
                **configmap["metadata"], "resourceVersion": "1"}}  # fmt: skip
        (rule,) = by_kind(docs, "Role")["petr4-forecaster-monitor"]["rules"]
        api.resource_names["configmaps"] = set(rule["resourceNames"])
        settings = monitor_settings(by_kind(docs, "Deployment")["petr4-forecaster-monitor-ibov"])
        token = tmp_path / "token"
        token.write_text(SA_TOKEN)
        access = KubeAccess(namespace=settings.namespace, api_server=api.url, sa_token_path=str(token),
                            ca_path=None)  # fmt: skip
        store = ConfigMapStore(KubeClient(access), settings.calibration_configmap)
        models = [settings.for_ticker(t).model_name for t in settings.tickers]
        shards = [m for n, p in predictors(docs).items() if n.startswith("ibov-") for m in mounted(p)]
        assert [store.configmap(m) for m in models] == shards
        api.before_next(
            "PATCH", lambda _: api.touch(api.collection("v1", "configmaps", NAMESPACE)[shards[0]])
        )
        for model in models:
            store.write(model, a_state(model))
            assert store.read(model) == a_state(model)
        assert len(api.by_method("PATCH")) == len(models) + 1  # the conflict, then its retry
        with pytest.raises(StoreError, match="403"):
            ConfigMapStore(store.kube, "petr4-forecaster-config").read("petr4-sa-forecaster")
    finally:
        api.close()
