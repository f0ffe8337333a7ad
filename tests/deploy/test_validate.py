"""Every rendered document (chart renders and kustomize builds) against real schemas: built-in kinds
with kubernetes-validate in strict mode for Kubernetes 1.30 and 1.33; InferenceService,
ServiceMonitor and PrometheusRule against the CRDs in ../shared/crds, unknown fields rejected."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from tests.deploy.conftest import CRD_FILES, KUBE_VERSIONS, VARIANT_NAMES, key


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
