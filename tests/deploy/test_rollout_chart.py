"""Promotion -> KServe rollout in the chart: the training Jobs end with `python -m rollout pin`
(only after training succeeded, with the token only in that container), a Role that can get/patch
exactly the pinned InferenceServices, API server egress, a failure policy that fails the Job
instead of retraining, and pins that match what the InferenceServices render (names, canary)."""

from __future__ import annotations

import pytest

from retrainer.kube import JSON_PATCH, MERGE_PATCH
from rollout.plan import plan
from tests.deploy.conftest import multi_values, render_docs

TOKEN_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def of(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def pod_specs(docs: list[dict]) -> dict[tuple[str, str], dict]:
    """(kind, model) -> pod spec of every training Job and CronJob."""
    out = {}
    for doc in of(docs, "Job") + of(docs, "CronJob"):
        spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
        out[(doc["kind"], doc["metadata"]["labels"]["petr4-forecaster/model"])] = spec
    return out


def rollout_role(docs: list[dict]) -> dict | None:
    roles = [r for r in of(docs, "Role") if r["metadata"]["name"].endswith("-rollout")]
    return roles[0] if roles else None


def pin_args(job_spec: dict) -> list[str] | None:
    containers = job_spec["template"]["spec"]["containers"]
    rollout = [c for c in containers if c["name"] == "rollout"]
    return rollout[0]["args"] if rollout else None


def test_default_job_trains_then_pins_with_the_token_in_the_pin_container_only():
    docs = render_docs()
    [isvc] = of(docs, "InferenceService")
    name = isvc["metadata"]["name"]
    for (kind, model), spec in pod_specs(docs).items():
        pod = spec["template"]["spec"]
        assert model == name, kind
        assert [c["name"] for c in pod["initContainers"]] == ["wait-for-mlflow", "training"], kind
        [rollout] = pod["containers"]
        assert rollout["command"] == ["python", "-m", "rollout", "pin"]
        assert rollout["args"][:4] == ["--model", name, "--alias", "champion"]
        assert rollout["image"].split("/")[-1].startswith("petr4-forecaster-serve:")  # torch-free
        assert pod["automountServiceAccountToken"] is False
        assert pod["serviceAccountName"].endswith("-training")
        mounts = {
            c["name"]: [m["mountPath"] for m in c.get("volumeMounts", [])] for c in pod["initContainers"]
        }
        assert all(TOKEN_MOUNT not in paths for paths in mounts.values()), kind
        assert TOKEN_MOUNT in [m["mountPath"] for m in rollout["volumeMounts"]]
        [policy] = spec["podFailurePolicy"]["rules"]
        assert policy["action"] == "FailJob"
        assert policy["onExitCodes"] == {"containerName": "rollout", "operator": "NotIn", "values": [0]}
        assert pod["restartPolicy"] == "Never"  # podFailurePolicy requires it


def test_role_gets_and_patches_only_the_pinned_inference_services():
    docs = render_docs(multi_values("Standard"))
    role = rollout_role(docs)
    [rule] = role["rules"]
    assert rule == {
        "apiGroups": ["serving.kserve.io"],
        "resources": ["inferenceservices"],
        "resourceNames": ["petr4-sa-forecaster", "itub4-sa-forecaster"],  # VALE3 is pinned in Git
        "verbs": ["get", "patch"],
    }
    isvcs = {d["metadata"]["name"] for d in of(docs, "InferenceService")}
    assert set(rule["resourceNames"]) <= isvcs
    [binding] = [b for b in of(docs, "RoleBinding") if b["roleRef"]["name"] == role["metadata"]["name"]]
    [subject] = binding["subjects"]
    training_sa = {p["template"]["spec"]["serviceAccountName"] for p in pod_specs(docs).values()}
    assert {subject["name"]} == training_sa and subject["kind"] == "ServiceAccount"


def test_training_network_policy_lets_the_pin_reach_the_api_server():
    docs = render_docs()
    [policy] = [p for p in of(docs, "NetworkPolicy") if p["metadata"]["name"].endswith("-training")]
    api = [r for r in policy["spec"]["egress"] if {p["port"] for p in r["ports"]} == {443, 6443}]
    assert api and api[0]["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    for spec in pod_specs(docs).values():
        labels = spec["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items()
    off = render_docs({"rollout": {"enabled": False}})
    [policy] = [p for p in of(off, "NetworkPolicy") if p["metadata"]["name"].endswith("-training")]
    assert not [r for r in policy["spec"]["egress"] if 6443 in {p["port"] for p in r["ports"]}]


def test_standard_canary_pins_stable_and_canary_and_git_pins_are_left_alone():
    docs = render_docs(multi_values("Standard"))
    specs = pod_specs(docs)
    for kind in ("Job", "CronJob"):
        assert pin_args(specs[(kind, "petr4-sa-forecaster")]) == [
            "--model", "petr4-sa-forecaster", "--alias", "champion", "--canary-alias", "challenger",
            "--tracking-uri", "$(FORECASTER_TRACKING_URI)",
        ]  # fmt: skip
        vale = specs[(kind, "vale-forecaster")]  # models[].version: 7, Git is in charge
        assert pin_args(vale) is None and "podFailurePolicy" not in vale
        assert [c["name"] for c in vale["template"]["spec"]["containers"]] == ["training"]
        assert "kube-api-access" not in [v["name"] for v in vale["template"]["spec"]["volumes"]]


def test_knative_canary_job_pins_the_canary_revision_only():
    docs = render_docs(multi_values("Knative"))
    args = pin_args(pod_specs(docs)[("CronJob", "petr4-sa-forecaster")])
    assert "--alias" not in args  # pinning the stable model would end the Knative canary
    assert args[2:6] == ["--canary-alias", "challenger", "--traffic-percent", "20"]


@pytest.mark.parametrize(
    "values",
    [{"predictor": {"delivery": "mlflow"}}, {"rollout": {"enabled": False}}, {"kserve": {"enabled": False}}],
)
def test_no_pin_without_storage_uri_delivery_or_when_off(values):
    docs = render_docs(values)
    assert rollout_role(docs) is None
    for spec in pod_specs(docs).values():
        assert pin_args(spec) is None and "podFailurePolicy" not in spec


@pytest.mark.parametrize("mode", ["Standard", "Knative"])
def test_the_pin_fits_the_rendered_inference_service(mode):
    """rollout.plan on what the chart renders: the canary it looks for is the one the chart names."""
    docs = render_docs(multi_values(mode))
    isvc = next(d for d in of(docs, "InferenceService") if d["metadata"]["name"] == "petr4-sa-forecaster")
    canary = plan(isvc, "canary", "models:/petr4-sa-forecaster/5")
    stable = plan(isvc, "stable", "models:/petr4-sa-forecaster/4")
    assert stable.content_type == MERGE_PATCH
    if mode == "Standard":
        assert canary.content_type == JSON_PATCH and canary.before == "models:/petr4-sa-forecaster@challenger"
        assert stable.before == "models:/petr4-sa-forecaster@champion"
    else:
        assert canary.content_type == MERGE_PATCH
        assert canary.body["spec"]["predictor"]["canaryTrafficPercent"] == 20
        assert stable.body["spec"]["predictor"]["canaryTrafficPercent"] is None  # ends the canary
