"""docs/deploy.md's Alertmanager route (kube-prometheus-stack values; no AlertmanagerConfig CRD to
validate offline) against the chart and the receiver: the URL is the retrainer's Service and route,
the token file is the Secret the chart references, the matchers are labels the rule really sets."""

from __future__ import annotations

import re

import helm_python
import yaml

from retrainer.settings import RETRAIN_LABEL
from tests.deploy.conftest import CHART, REPO, render_docs

DEPLOY_MD = REPO / "docs" / "deploy.md"
HELM_RELEASE = "forecaster"  # docs/deploy.md installs with `helm install forecaster`
NAMESPACE = "petr4-forecaster"


def yaml_blocks(text: str) -> list[dict]:
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)]


def alertmanager_values() -> dict:
    (values,) = [b for b in yaml_blocks(DEPLOY_MD.read_text()) if isinstance(b, dict) and "alertmanager" in b]
    return values["alertmanager"]


def seconds(duration: str) -> int:
    value, unit = re.fullmatch(r"(\d+)([smhd])", duration).groups()
    return int(value) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def helm_install_docs() -> list[dict]:
    with helm_python.Chart.load(CHART) as chart:
        # docs/deploy.md installs with `--set images.registry=REGISTRY`
        values = {"images": {"registry": "REGISTRY"}}
        rendered = chart.render(values, name=HELM_RELEASE, namespace=NAMESPACE, is_install=True)
    return [d for p, t in rendered.items() if p.endswith(".yaml") for d in yaml.safe_load_all(t) if d]


def test_route_matches_what_the_rule_sets_and_the_receiver_retrains_on():
    config = alertmanager_values()["config"]
    (route,) = config["route"]["routes"]
    key, value = RETRAIN_LABEL
    assert set(route["matchers"]) == {f'{key}="{value}"', f'namespace="{NAMESPACE}"'}
    retraining = [
        r
        for d in render_docs()
        if d["kind"] == "PrometheusRule"
        for g in d["spec"]["groups"]
        for r in g["rules"]
        if r.get("labels", {}).get(key) == value
    ]
    assert [r["alert"] for r in retraining] == ["ForecasterRealizedMAEHigh"]
    assert "model" in route["group_by"] and "namespace" in route["group_by"]
    # No hammering: a group is re-sent at most hourly, a still-firing alert once a day.
    assert seconds(route["group_interval"]) >= 3600 and seconds(route["repeat_interval"]) >= 6 * 3600
    assert route["continue"] is True
    (receiver,) = [r for r in config["receivers"] if r["name"] == route["receiver"]]
    (webhook,) = receiver["webhook_configs"]
    assert webhook["send_resolved"] is False


def test_url_and_token_are_the_chart_s():
    am = alertmanager_values()
    (webhook,) = am["config"]["receivers"][0]["webhook_configs"]
    docs = helm_install_docs()
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    name = f"{HELM_RELEASE}-petr4-forecaster-retrainer"
    assert [p["port"] for p in services[name]["spec"]["ports"]] == [8080]
    assert webhook["url"] == f"http://{name}.{NAMESPACE}.svc:8080/alerts"
    assert 'Route("/alerts", alerts, methods=["POST"])' in (REPO / "retrainer" / "app.py").read_text()
    (deployment,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (token,) = [e for e in container["env"] if e["name"] == "FORECASTER_RETRAINER_TOKEN"]
    ref = token["valueFrom"]["secretKeyRef"]
    auth = webhook["http_config"]["authorization"]
    assert auth.get("type", "Bearer") == "Bearer" and "credentials" not in auth
    mounted = am["alertmanagerSpec"]["secrets"]
    assert auth["credentials_file"] == f"/etc/alertmanager/secrets/{mounted[0]}/{ref['key']}"
    text = DEPLOY_MD.read_text()
    # The commands that create the Secret the chart references (Helm install and kustomize base).
    assert f"create secret generic {ref['name']} \\\n  --from-literal={ref['key']}=" in text
    assert "create secret generic petr4-forecaster-retrainer-token \\\n  --from-literal=token=" in text
    assert f"-n monitoring create secret generic {mounted[0]} --from-literal={ref['key']}=" in text


def test_alertmanager_config_matches_the_documented_route():
    """The chart's optional AlertmanagerConfig (explicitly enabled: offline the API is not
    detected) routes what the documented route routes, to the same URL, with the retrainer's own
    Secret as the bearer token."""
    (route,) = alertmanager_values()["config"]["route"]["routes"]
    values = {"monitoring": {"alertmanagerConfig": {"enabled": True}}}
    (config,) = [d for d in render_docs(values) if d["kind"] == "AlertmanagerConfig"]
    spec = config["spec"]
    key, value = RETRAIN_LABEL
    assert spec["route"]["matchers"] == [{"name": key, "value": value, "matchType": "="}]
    assert spec["route"]["groupBy"] == route["group_by"] and spec["route"]["continue"] is True
    assert seconds(spec["route"]["groupInterval"]) == seconds(route["group_interval"])
    assert seconds(spec["route"]["repeatInterval"]) == seconds(route["repeat_interval"])
    (receiver,) = spec["receivers"]
    assert receiver["name"] == spec["route"]["receiver"]
    (webhook,) = receiver["webhookConfigs"]
    assert webhook["url"] == f"http://petr4-forecaster-retrainer.{NAMESPACE}.svc:8080/alerts"
    assert webhook["sendResolved"] is False
    assert webhook["httpConfig"]["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": "petr4-forecaster-retrainer-token", "key": "token"},
    }
    assert not [d for d in render_docs() if d["kind"] == "AlertmanagerConfig"], "auto: off offline"
    assert not [
        d
        for d in render_docs({**values, "retrainer": {"enabled": False}})
        if d["kind"] == "AlertmanagerConfig"
    ]
