"""manifests/ is generated from the chart (scripts/render-manifests.py) and agrees with it: committed
== generated, each kustomize build == the chart rendered with that overlay's values, and the chart as
a Helm user installs it agrees with the kustomize build on images, ports, probes, selectors, labels."""

from __future__ import annotations

import pytest

from tests.deploy.conftest import OVERLAYS, key, kustomize_docs, load_script, render_docs

HELM_ONLY_LABELS = {"helm.sh/chart", "app.kubernetes.io/managed-by"}
WORKLOADS = ("Deployment", "Job", "CronJob", "InferenceService")


@pytest.fixture(scope="module")
def script():
    return load_script("render-manifests")


def test_committed_manifests_are_generated(script):
    wanted = script.generate()
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    leftovers = [p for p in script.OUT.rglob("*.yaml") if p not in wanted]
    assert not stale and not leftovers, (
        f"run `.venv/bin/python scripts/render-manifests.py`: out of date {stale}, not generated {leftovers}"
    )


def overlay_values(script, overlay: str) -> dict:
    if overlay == "standard":
        return script.BASE_VALUES
    return script.merge(script.BASE_VALUES, script.VARIANTS[overlay][0])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kustomize_equals_chart(script, overlay):
    built = {key(d): d for d in kustomize_docs(overlay)}
    chart = {key(d): d for d in render_docs(overlay_values(script, overlay))}
    assert set(built) == set(chart)
    different = [k for k in built if built[k] != chart[k]]
    assert not different, different


def pod_specs(doc: dict) -> list[dict]:
    """Pod specs (or KServe component specs) of a workload, with their pod labels."""
    if doc["kind"] == "Deployment" or doc["kind"] == "Job":
        return [{**doc["spec"]["template"]["spec"], "_labels": doc["spec"]["template"]["metadata"]["labels"]}]
    if doc["kind"] == "CronJob":
        template = doc["spec"]["jobTemplate"]["spec"]["template"]
        return [{**template["spec"], "_labels": template["metadata"]["labels"]}]
    predictors = [doc["spec"]["predictor"]] + [c["predictor"] for c in doc["spec"].get("canary", [])]
    transformers = [doc["spec"]["transformer"]] if "transformer" in doc["spec"] else []
    # A `model:` predictor's container is its model (KServe merges it over the ServingRuntime's).
    return [
        {**p, "_labels": p["labels"], "containers": p.get("containers", [p.get("model")])}
        for p in predictors + transformers
    ]


def surface(docs: list[dict]) -> dict:
    """What must agree between chart and kustomize: per object its labels (Helm's own left out),
    selectors, and per container image, ports, probes, security context."""
    out = {}
    for doc in docs:
        entry = {
            "labels": {
                k: v for k, v in doc["metadata"].get("labels", {}).items() if k not in HELM_ONLY_LABELS
            }
        }
        spec = doc.get("spec", {})
        for field in ("selector", "podSelector"):
            if field in spec:
                entry[field] = spec[field]
        if doc["kind"] in WORKLOADS:
            entry["pods"] = [
                {
                    "labels": {k: v for k, v in pod["_labels"].items() if k not in HELM_ONLY_LABELS},
                    "containers": [
                        {
                            f: c.get(f)
                            for f in (
                                "name",
                                "image",
                                "ports",
                                "livenessProbe",
                                "readinessProbe",
                                "startupProbe",
                                "securityContext",
                            )
                        }
                        for c in pod.get("initContainers", []) + pod["containers"]
                    ],
                }
                for pod in pod_specs(doc)
            ]
        out[key(doc)] = entry
    return out


@pytest.mark.parametrize("mode", ["Standard", "Knative"])
def test_helm_install_agrees_with_kustomize(mode):
    """A Helm user (Helm's labels, no Namespace object) gets the same images, ports, probes,
    selectors and labels as `kubectl apply -k manifests/overlays/<mode>`."""
    # The `helm test` Pod (and its NetworkPolicy) exist for Helm users only.
    helm = surface(render_docs({"kserve": {"deploymentMode": mode}, "helmTest": {"enabled": False}}))
    built = surface(d for d in kustomize_docs(mode.lower()) if d["kind"] != "Namespace")
    assert helm == built


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_selectors_select_pods(overlay):
    """Every Service and NetworkPolicy selects pods that exist; Deployment selectors match their pods."""
    docs = kustomize_docs(overlay)
    pods = [pod["_labels"] for d in docs if d["kind"] in WORKLOADS for pod in pod_specs(d)]

    def selects(selector: dict) -> bool:
        return any(selector.items() <= labels.items() for labels in pods)

    for doc in docs:
        if doc["kind"] == "Service":
            assert selects(doc["spec"]["selector"]), key(doc)
        elif doc["kind"] == "NetworkPolicy":
            assert selects(doc["spec"]["podSelector"]["matchLabels"]), key(doc)
            for rule in doc["spec"].get("egress", []):
                for peer in rule.get("to", []):
                    if "podSelector" in peer and "namespaceSelector" not in peer:
                        assert selects(peer["podSelector"]["matchLabels"]), (key(doc), peer)
        elif doc["kind"] == "Deployment":
            match = doc["spec"]["selector"]["matchLabels"]
            assert match.items() <= doc["spec"]["template"]["metadata"]["labels"].items()
    isvcs = {d["metadata"]["name"] for d in docs if d["kind"] == "InferenceService"}
    monitors = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceMonitor"}
    assert set(monitors) == {"petr4-forecaster-predictor", "petr4-forecaster-monitor"}
    predictor = monitors["petr4-forecaster-predictor"]
    assert set(predictor["spec"]["selector"]["matchExpressions"][0]["values"]) == isvcs
    # The realized-accuracy ServiceMonitor selects the monitors' Services, by a port they name.
    services = [d for d in docs if d["kind"] == "Service"]
    scrape = monitors["petr4-forecaster-monitor"]["spec"]
    selected = [
        s for s in services if scrape["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
    ]
    assert len(selected) == len(isvcs)
    for service in selected:
        assert {e["port"] for e in scrape["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}


def test_overlays_differ_only_where_meant():
    standard = {key(d): d for d in kustomize_docs("standard")}
    knative = {key(d): d for d in kustomize_docs("knative")}
    assert set(standard) == set(knative)
    changed = {k for k in standard if standard[k] != knative[k]}
    assert changed == {
        ("InferenceService", "petr4-sa-forecaster"),
        ("NetworkPolicy", "petr4-forecaster-predictor"),
        ("NetworkPolicy", "petr4-forecaster-transformer"),
        ("ServiceMonitor", "petr4-forecaster-predictor"),
    }
    external = {key(d): d for d in kustomize_docs("external-mlflow")}
    assert set(standard) - set(external) == {
        (kind, "petr4-forecaster-mlflow")
        for kind in ("Deployment", "Service", "PersistentVolumeClaim", "ServiceAccount", "NetworkPolicy")
    } | {("ConfigMap", "petr4-forecaster-mlflow-readonly")}  # the read-only port's nginx configuration
    config = external["ConfigMap", "petr4-forecaster-config"]
    assert config["data"]["tracking-uri"] == "https://mlflow.example.org"
    assert config["data"]["read-only-tracking-uri"] == "https://mlflow.example.org"  # no proxy there
    assert (
        external["ConfigMap", "petr4-forecaster-storage"]["data"]["tracking-uri"]
        == "https://mlflow.example.org"
    )
