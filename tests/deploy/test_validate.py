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


# KServe kinds whose CRDs are not in ../shared/crds: their fields as KServe 0.20's Go types declare
# them (pkg/apis/serving/v1alpha1: servingruntime_types.go, storage_container_types.go), and their
# containers checked as what they are, core/v1 Containers, by kubernetes-validate (strict) in a Pod.
KSERVE_V1ALPHA1 = {
    "ServingRuntime": {
        "spec": {
            "supportedModelFormats", "multiModel", "disabled", "protocolVersions", "workerSpec",
            "containers", "volumes", "nodeSelector", "affinity", "tolerations", "labels",
            "annotations", "imagePullSecrets", "hostIPC", "grpcEndpoint", "grpcDataEndpoint",
            "httpDataEndpoint", "replicas", "storageHelper", "builtInAdapter",
        },
        "supportedModelFormats": {"name", "version", "autoSelect", "priority"},
    },
    "ClusterStorageContainer": {
        "": {"apiVersion", "kind", "metadata", "spec", "disabled"},
        "spec": {"container", "supportedUriFormats"},
        "supportedUriFormats": {"prefix", "regex"},
    },
}  # fmt: skip


def kserve_v1alpha1_errors(doc: dict, version: str) -> list[str]:
    fields, spec, errors = KSERVE_V1ALPHA1[doc["kind"]], doc["spec"], []
    top = fields.get("", {"apiVersion", "kind", "metadata", "spec"})
    checks = [("", doc, top), ("spec", spec, fields["spec"])]
    for name in ("supportedModelFormats", "supportedUriFormats"):
        checks += [(name, item, fields[name]) for item in spec.get(name, [])]
    for where, obj, allowed in checks:
        errors += [f"{key(doc)}: unknown field {f!r} in {where or 'the object'}" for f in set(obj) - allowed]
    containers = spec["containers"] if "containers" in spec else [spec["container"]]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": containers}}
    error = builtin_errors(pod, version)
    return errors + ([f"{key(doc)} containers: {error}"] if error else [])


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
        if doc["apiVersion"] == "serving.kserve.io/v1alpha1":
            for version in KUBE_VERSIONS:
                errors += kserve_v1alpha1_errors(doc, version)
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
    isvc["spec"]["canary"][0]["predictor"]["model"]["imagePullPolicyy"] = "Always"
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


def test_kserve_v1alpha1_checks_are_strict(all_variants):
    """A misspelled field of the ServingRuntime or ClusterStorageContainer, or of their containers,
    is caught (the chart renders both by default)."""
    docs = {key(d): d for d in all_variants["chart-default-Standard"]}
    runtime = copy.deepcopy(docs["ServingRuntime", "petr4-forecaster-predictor"])
    storage = copy.deepcopy(docs["ClusterStorageContainer", "petr4-forecaster-models"])
    assert not kserve_v1alpha1_errors(runtime, "1.33") and not kserve_v1alpha1_errors(storage, "1.33")
    runtime["spec"]["supportedModelFormats"][0]["autoselect"] = True
    runtime["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    assert len(kserve_v1alpha1_errors(runtime, "1.33")) == 2
    storage["spec"]["supportedUriFormat"] = storage["spec"].pop("supportedUriFormats")
    assert kserve_v1alpha1_errors(storage, "1.33")


def test_the_calibration_objects_are_validated_strictly(all_variants, crd_validators):
    """The calibration ConfigMap, the monitor's Role and the predictor's projected volume (an
    InferenceService's predictor spec takes a pod's volumes: the CRD schema checks them)."""
    docs = {key(d): d for d in all_variants["chart-multi-Standard"]}
    configmap = docs["ConfigMap", "petr4-forecaster-calibration-petr4-sa-forecaster"]
    assert not any(builtin_errors(configmap, v) for v in KUBE_VERSIONS)
    role = copy.deepcopy(docs["Role", "petr4-forecaster-monitor"])
    assert not any(builtin_errors(role, v) for v in KUBE_VERSIONS)
    role["rules"][0]["resourceName"] = role["rules"][0].pop("resourceNames")
    assert all(builtin_errors(role, v) for v in KUBE_VERSIONS)
    isvc = copy.deepcopy(docs["InferenceService", "petr4-sa-forecaster"])
    assert not crd_errors(isvc, crd_validators)
    (volume,) = [v for v in isvc["spec"]["predictor"]["volumes"] if v["name"] == "calibration"]
    volume["projected"]["sources"][0]["configMap"]["optinal"] = True
    assert crd_errors(isvc, crd_validators)
