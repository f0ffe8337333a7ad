"""Every rendered document (chart renders and kustomize builds) against real schemas: built-in kinds
with kubernetes-validate in strict mode for Kubernetes 1.30 and 1.33; InferenceService,
ServiceMonitor and PrometheusRule against the CRDs in ../shared/crds, unknown fields rejected.
That includes the realized-accuracy monitors and the retraining webhook receiver (with its Role)."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from tests.deploy.conftest import CRD_FILES, KUBE_VERSIONS, RETRAINER_KINDS, VARIANT_NAMES, key


def builtin_errors(doc: dict, version: str) -> str | None:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return f"{key(doc)} on {version}: {error.message} at {list(error.path)}"
    return None


def crd_errors(doc: dict, validators: dict) -> list[str]:
    validator = validators[(doc["apiVersion"], doc["kind"])]
    return [f"{key(doc)}: {e.message} at {list(e.absolute_path)}" for e in validator.iter_errors(doc)]


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_every_document_validates(variant, all_variants, crd_validators):
    docs = all_variants[variant]
    assert docs
    errors, kinds = [], set()
    for doc in docs:
        kinds.add(doc["kind"])
        if (doc["apiVersion"], doc["kind"]) in CRD_FILES:
            errors += crd_errors(doc, crd_validators)
            continue
        for version in KUBE_VERSIONS:  # SchemaNotFoundError (an unknown kind) fails the test
            error = builtin_errors(doc, version)
            if error:
                errors.append(error)
    assert not errors, "\n".join(errors)
    assert {"Deployment", "CronJob", "Job", "NetworkPolicy", "ServiceAccount", "ConfigMap"} & kinds


def test_validators_are_strict(all_variants, crd_validators):
    """The checks above would catch a misspelled field: the schemas really are strict."""
    docs = {key(d): d for d in all_variants["chart-multi-Standard"]}
    deployment = copy.deepcopy(docs["Deployment", "petr4-forecaster-mlflow"])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    assert all(builtin_errors(deployment, v) for v in KUBE_VERSIONS)
    isvc = copy.deepcopy(docs["InferenceService", "petr4-sa-forecaster"])
    assert not crd_errors(isvc, crd_validators)
    isvc["spec"]["predictor"]["minReplica"] = 1
    isvc["spec"]["canary"][0]["predictor"]["containers"][0]["imagePullPolicyy"] = "Always"
    assert len(crd_errors(isvc, crd_validators)) == 2
    monitor = copy.deepcopy(docs["ServiceMonitor", "petr4-forecaster-predictor"])
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    assert crd_errors(monitor, crd_validators)
    rule = copy.deepcopy(docs["PrometheusRule", "petr4-forecaster-alerts"])
    rule["spec"]["groups"][0]["rules"][0]["expression"] = "up"
    assert crd_errors(rule, crd_validators)


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_monitor_and_retrainer_are_among_the_validated(variant, all_variants):
    """Every variant above carries the monitor and retrainer objects, so the loop validated them."""
    keys = {key(d) for d in all_variants[variant]}
    expected = {
        ("Deployment", "petr4-forecaster-monitor-petr4-sa"),
        ("Service", "petr4-forecaster-monitor-petr4-sa"),
        ("ServiceMonitor", "petr4-forecaster-monitor"),
        ("NetworkPolicy", "petr4-forecaster-monitor"),
        ("ServiceAccount", "petr4-forecaster-monitor"),
        *((kind, "petr4-forecaster-retrainer") for kind in RETRAINER_KINDS),
    }
    assert expected <= keys, expected - keys


def test_new_objects_fail_on_typos(all_variants, crd_validators):
    docs = {key(d): d for d in all_variants["chart-multi-Standard"]}
    role = copy.deepcopy(docs["Role", "petr4-forecaster-retrainer"])
    assert not any(builtin_errors(role, v) for v in KUBE_VERSIONS)
    role["rules"][0]["resourceName"] = role["rules"][0].pop("resourceNames")
    assert all(builtin_errors(role, v) for v in KUBE_VERSIONS)
    deployment = copy.deepcopy(docs["Deployment", "petr4-forecaster-retrainer"])
    deployment["spec"]["template"]["spec"]["volumes"][-1]["projected"]["sources"][0]["serviceAccountToken"][
        "expirySeconds"
    ] = 3600
    assert all(builtin_errors(deployment, v) for v in KUBE_VERSIONS)
    monitor = copy.deepcopy(docs["ServiceMonitor", "petr4-forecaster-monitor"])
    assert not crd_errors(monitor, crd_validators)
    monitor["spec"]["endpoints"][0]["portName"] = "metrics"
    assert crd_errors(monitor, crd_validators)
