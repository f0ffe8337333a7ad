"""What KServe 0.20's admission webhook refuses beyond the CRD schema, encoded as a checker, run over
every InferenceService the chart renders (default, multi-ticker, canaries in both modes).

The rules come from KServe's `pkg/apis/serving/v1beta1/inference_service_validation.go` and its
TestValidateCanarySpecs: `spec.canary` only with the explicit annotation
`serving.kserve.io/deploymentMode: Standard`, only when the stable predictor has a `model` (with a
storageUri); every canary predictor named, names unique and not the stable's; no `maxReplicas`,
`scaleMetric`, `scaleTarget`, `autoScaling` or `workerSpec` on a canary; its `minReplicas` at most
the stable one's; traffic percents summing to at most 100. Plus the component checks every
predictor passes (exactly one implementation, HPA/KPA metrics and targets, autoscaler class).
The storageUri check is KServe's ValidateStorageURI (pkg/controller/v1beta1/inferenceservice/utils,
run when the predictor is reconciled): admitted when an enabled ClusterStorageContainer's
supportedUriFormats matches it (a `prefix` by strings.HasPrefix, a `regex` by regexp.MatchString;
v1alpha1 StorageContainerSpec.IsStorageUriSupported), else only a local path (no `scheme://`) or
one of KServe's own prefixes; nothing else parses the URI, so a universe shard's
`models:/a@champion,b@champion` is admitted through the chart's `models:/` prefix.
The chart before issue 13 fails the canary rules (unnamed canary reusing the stable predictor's
autoscaling fields, custom containers and no storageUri): see test_checker_refuses_the_old_canary.
"""

from __future__ import annotations

import copy
import re

import helm_python
import pytest

from tests.deploy.conftest import MODES, multi_values, render, render_docs, universe_values

MODE = "serving.kserve.io/deploymentMode"
CLASS = "serving.kserve.io/autoscalerClass"
IMPLEMENTATIONS = (
    "model", "sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "huggingface",
    "pmml", "lightgbm", "paddle",
)  # fmt: skip
CANARY_FORBIDDEN = ("maxReplicas", "scaleMetric", "scaleTarget", "autoScaling", "workerSpec")


def component_errors(predictor: dict, annotations: dict) -> list[str]:
    """validateExactlyOneImplementation and validateAutoScalingCompExtension for one component."""
    errors = []
    implementations = [i for i in IMPLEMENTATIONS if i in predictor]
    if len(implementations) + bool(predictor.get("containers")) != 1:
        errors.append("exactly one implementation (model, a framework or containers) is required")
    metric, target = predictor.get("scaleMetric"), predictor.get("scaleTarget")
    if annotations.get(MODE) == "Standard" and annotations.get(CLASS, "hpa") == "hpa":
        if (metric or "cpu") not in ("cpu", "memory"):
            errors.append(f"[{metric}] is not a supported metric")
        if target is not None and (metric or "cpu") == "cpu" and not 1 <= target <= 100:
            errors.append("the target utilization percentage should be a [1-100] integer")
    elif annotations.get(MODE) != "Standard":
        if (metric or "concurrency") not in ("concurrency", "rps"):
            errors.append(f"[{metric}] is not a supported metric")
        if "deploymentStrategy" in predictor:
            errors.append("customizing deploymentStrategy is only supported for raw deployment mode")
    return errors


def admission_errors(isvc: dict) -> list[str]:
    """Why KServe 0.20's webhook would refuse this InferenceService on create (empty: admitted)."""
    annotations = isvc["metadata"].get("annotations", {})
    spec, errors = isvc["spec"], []
    stable = spec["predictor"]
    if annotations.get(CLASS, "hpa") not in ("hpa", "keda", "none", "external"):
        errors.append(f"[{annotations[CLASS]}] is not a supported autoscaler class type")
    errors += component_errors(stable, annotations)
    percent = stable.get("canaryTrafficPercent")
    if percent is not None and not 0 <= percent <= 100:
        errors.append("canaryTrafficPercent must be within [0, 100]")
    canaries = spec.get("canary") or []
    if not canaries:
        return errors
    if annotations.get(MODE) != "Standard":
        return [*errors, "spec.canary is only supported in Standard deployment mode (explicit annotation)"]
    if "model" not in stable or not stable["model"].get("storageUri"):
        errors.append("spec.canary requires a stable predictor with a model and a storageUri")
    names = set()
    for index, canary in enumerate(canaries):
        predictor = canary["predictor"]
        name = predictor.get("name")
        if not name:
            errors.append(f"canary[{index}].predictor.name is required")
        elif name in names:
            errors.append(f"canary predictor name {name!r} is duplicated")
        elif name == stable.get("name"):
            errors.append(f"canary predictor name {name!r} conflicts with stable")
        names.add(name)
        errors += [f"canary[{index}] must not set {f}" for f in CANARY_FORBIDDEN if f in predictor]
        minimum = predictor.get("minReplicas")
        if minimum is not None and minimum > (stable.get("minReplicas") or 1):
            errors.append(f"canary[{index}].minReplicas must not exceed stable minReplicas")
        if "model" not in predictor and not predictor.get("containers"):
            errors.append(f"canary[{index}] has no model")
    if sum(c.get("trafficPercent", 0) for c in canaries) > 100:
        errors.append("sum of canary trafficPercent must be <= 100")
    return errors


# KServe's built-in storage prefixes (SupportedStorageURIPrefixList) and its Azure blob pattern.
BUILTIN_PREFIXES = (
    "gs://", "s3://", "pvc://", "file://", "https://", "http://", "hdfs://", "webhdfs://", "hf://", "oci://",
)  # fmt: skip
AZURE_BLOB = r"https://(.+?).blob.core.windows.net/(.+)"


def storage_uri_errors(uri: str, storage_containers: list[dict]) -> list[str]:
    """ValidateStorageURI: a ClusterStorageContainer that supports the URI, else KServe's own."""
    for container in storage_containers:
        if container.get("disabled"):
            continue
        for fmt in container["spec"]["supportedUriFormats"]:
            if "prefix" in fmt and uri.startswith(fmt["prefix"]):
                return []
            if "regex" in fmt and re.search(fmt["regex"], uri):
                return []
    if not re.search(r"\w+?://", uri) or uri.startswith(BUILTIN_PREFIXES) or re.search(AZURE_BLOB, uri):
        return []
    return [f"StorageURI not supported: {uri}"]


def isvcs(values: dict) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in render_docs(values) if d["kind"] == "InferenceService"}


# --- the checker refuses what KServe refuses --------------------------------------------------------
def admitted_canary() -> dict:
    return isvcs(multi_values("Standard"))["petr4-sa-forecaster"]


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (lambda i: i["metadata"]["annotations"].pop(MODE), "only supported in Standard"),
        (lambda i: i["spec"]["predictor"]["model"].pop("storageUri"), "stable predictor with a model"),
        (lambda i: i["spec"]["canary"][0]["predictor"].pop("name"), "predictor.name is required"),
        (lambda i: i["spec"]["canary"].append(copy.deepcopy(i["spec"]["canary"][0])), "duplicated"),
        (lambda i: i["spec"]["predictor"].update(name="canary"), "conflicts with stable"),
        (lambda i: i["spec"]["canary"][0]["predictor"].update(maxReplicas=3), "must not set maxReplicas"),
        (lambda i: i["spec"]["canary"][0]["predictor"].update(scaleMetric="cpu"), "must not set scaleMetric"),
        (lambda i: i["spec"]["canary"][0]["predictor"].update(scaleTarget=70), "must not set scaleTarget"),
        (lambda i: i["spec"]["canary"][0]["predictor"].update(minReplicas=2), "must not exceed stable"),
        (lambda i: i["spec"]["canary"][0].update(trafficPercent=101), "must be <= 100"),
        (lambda i: i["spec"]["predictor"].update(containers=[{"name": "x"}]), "exactly one implementation"),
        (lambda i: i["spec"]["predictor"].update(scaleMetric="concurrency"), "not a supported metric"),
    ],
)
def test_checker_refuses(breakage, message):
    isvc = admitted_canary()
    assert admission_errors(isvc) == []
    breakage(isvc)
    assert any(message in e for e in admission_errors(isvc)), admission_errors(isvc)


def test_checker_refuses_the_old_canary():
    """The shape the chart rendered before: the canary reused the stable predictor spec (no name,
    with autoscaling fields) and both were custom containers without a storageUri."""
    isvc = admitted_canary()
    stable = isvc["spec"]["predictor"]
    old = {k: v for k, v in stable.items() if k != "model"}
    old["containers"] = [{k: v for k, v in stable["model"].items() if k not in ("modelFormat", "runtime")}]
    old["containers"][0].pop("storageUri")
    isvc["spec"]["predictor"] = old
    isvc["spec"]["canary"] = [{"trafficPercent": 20, "predictor": copy.deepcopy(old)}]
    errors = admission_errors(isvc)
    for message in ("stable predictor with a model", "name is required", "must not set maxReplicas"):
        assert any(message in e for e in errors), errors


# --- every InferenceService the chart renders is admitted -------------------------------------------
CANARY_VALUES = {
    "models": [
        {"ticker": "PETR4.SA", "version": 3, "canary": {"enabled": True, "trafficPercent": 25, "version": 4}},
        {"ticker": "VALE3.SA", "minReplicas": 2, "canary": {"enabled": True, "minReplicas": 2}},
        {"ticker": "ITUB4.SA", "canary": {"enabled": True, "trafficPercent": 100, "alias": "shadow"}},
        {"ticker": "BBAS3.SA"},
    ]
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("values", ["default", "multi", "canaries", "universe"])
def test_rendered_inferenceservices_are_admitted(mode, values):
    chosen = {
        "default": {},
        "multi": multi_values(mode),
        "canaries": {**CANARY_VALUES, "kserve": {"deploymentMode": mode}},
        "universe": universe_values(mode),
    }[values]
    chosen = {**chosen, "kserve": {**chosen.get("kserve", {}), "deploymentMode": mode}}
    docs = render_docs(chosen)
    rendered = {d["metadata"]["name"]: d for d in docs if d["kind"] == "InferenceService"}
    storage = [d for d in docs if d["kind"] == "ClusterStorageContainer"]
    assert rendered and storage
    for name, isvc in rendered.items():
        assert isvc["metadata"]["annotations"][MODE] == mode, "the mode is always explicit"
        assert admission_errors(isvc) == [], (name, admission_errors(isvc))
        predictors = [isvc["spec"]["predictor"], *(c["predictor"] for c in isvc["spec"].get("canary", []))]
        for predictor in predictors:
            assert storage_uri_errors(predictor["model"]["storageUri"], storage) == [], name
    if values == "universe":  # the shards' URIs list several models, and pass all the same
        assert rendered["ibov-0"]["spec"]["predictor"]["model"]["storageUri"].count(",") == 1


def test_storage_uri_checker_refuses_what_kserve_refuses():
    (storage,) = [d for d in render_docs() if d["kind"] == "ClusterStorageContainer"]
    shard = "models:/a-forecaster@champion,b-forecaster/7"
    assert storage_uri_errors(shard, [storage]) == []
    assert storage_uri_errors("s3://bucket/model", []) == [] and storage_uri_errors("/mnt/x", []) == []
    assert storage_uri_errors("mlflow://a-forecaster@champion", [storage]), "no container for this scheme"
    disabled = {**storage, "disabled": True}
    assert storage_uri_errors("models://a-forecaster@champion", [disabled])
    assert storage_uri_errors("models://a-forecaster@champion", [storage]) == []


@pytest.mark.parametrize("mode", MODES)
def test_canaries_in_both_modes(mode):
    rendered = isvcs({**CANARY_VALUES, "kserve": {"deploymentMode": mode}})
    petr4, vale = rendered["petr4-sa-forecaster"]["spec"], rendered["vale3-sa-forecaster"]["spec"]
    itub4 = rendered["itub4-sa-forecaster"]["spec"]
    assert "canary" not in rendered["bbas3-sa-forecaster"]["spec"]
    if mode == "Standard":
        assert petr4["predictor"]["model"]["storageUri"] == "models:/petr4-sa-forecaster/3"
        (canary,) = petr4["canary"]
        assert canary["trafficPercent"] == 25
        assert canary["predictor"]["model"]["storageUri"] == "models:/petr4-sa-forecaster/4"
        assert vale["canary"][0]["predictor"]["minReplicas"] == 2 == vale["predictor"]["minReplicas"]
        assert "minReplicas" not in petr4["canary"][0]["predictor"], "KServe derives it from the traffic"
        assert itub4["canary"][0]["predictor"]["model"]["storageUri"] == "models:/itub4-sa-forecaster@shadow"
        for spec in (petr4, vale, itub4):
            assert "canaryTrafficPercent" not in spec["predictor"]
    else:  # Knative: no spec.canary; this revision serves the canary model with its share
        for spec in (petr4, vale, itub4):
            assert "canary" not in spec
        assert petr4["predictor"]["canaryTrafficPercent"] == 25
        assert petr4["predictor"]["model"]["storageUri"] == "models:/petr4-sa-forecaster/4"
        assert itub4["predictor"]["canaryTrafficPercent"] == 100


def test_every_model_has_its_runtime_and_storage_container():
    """KServe resolves `model.runtime` by name and format, and a storageUri by a storage container
    supporting its prefix: both are in the same render."""
    docs = render_docs(multi_values("Standard"))
    runtimes = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "ServingRuntime"}
    (storage,) = [d["spec"] for d in docs if d["kind"] == "ClusterStorageContainer"]
    assert storage["container"]["name"] == "storage-initializer"
    assert storage["container"]["command"] == ["python", "-m", "bundle.fetch"]
    assert "args" not in storage["container"], "KServe passes <storageUri> <dest> as the arguments"
    prefixes = [f["prefix"] for f in storage["supportedUriFormats"]]
    for isvc in (d for d in docs if d["kind"] == "InferenceService"):
        predictors = [isvc["spec"]["predictor"], *(c["predictor"] for c in isvc["spec"].get("canary", []))]
        for predictor in predictors:
            model = predictor["model"]
            runtime = runtimes[model["runtime"]]
            assert model["modelFormat"]["name"] in {f["name"] for f in runtime["supportedModelFormats"]}
            assert any(model["storageUri"].startswith(p) for p in prefixes)
    # Another release of the chart in the cluster leaves the cluster-wide container to the first.
    values = {"storageInitializer": {"clusterStorageContainer": {"create": False}}}
    assert not [d for d in render_docs(values) if d["kind"] == "ClusterStorageContainer"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"predictor": {"delivery": "mlflow"}, "models": [{"ticker": "X", "canary": {"enabled": True}}]},
            "needs predictor.delivery=storageUri",
        ),
        (
            {"models": [{"ticker": "X", "canary": {"enabled": True, "alias": "champion"}}]},
            "the stable predictor's model",
        ),
        (
            {"models": [{"ticker": "X", "minReplicas": 1, "canary": {"enabled": True, "minReplicas": 2}}]},
            "exceeds the stable predictor's minReplicas",
        ),
    ],
    ids=["standard-canary-without-storage-uri", "canary-equals-stable", "canary-min-replicas"],
)
def test_refused_at_template_time(values, message):
    """What KServe would refuse at admission (or what would be a no-op canary) fails `helm install`
    with the reason instead."""
    with pytest.raises(helm_python.HelmError, match=message):
        render(values)


def test_mlflow_delivery_keeps_alias_following():
    """delivery=mlflow: no storageUri, the predictor resolves and polls the alias itself (Knative
    canaries still work: they need no model storageUri)."""
    values = {"predictor": {"delivery": "mlflow"}, "kserve": {"deploymentMode": "Knative"}}
    values["models"] = [{"ticker": "PETR4.SA", "canary": {"enabled": True, "trafficPercent": 5}}]
    (isvc,) = isvcs(values).values()
    model = isvc["spec"]["predictor"]["model"]
    assert "storageUri" not in model
    args = dict(zip(model["args"][::2], model["args"][1::2], strict=True))
    assert args["--model-source"] == "models:/petr4-sa-forecaster@challenger"
    assert args["--reload-interval-s"] == "60" and args["--tracking-uri"] == "$(FORECASTER_TRACKING_URI)"
    assert admission_errors(isvc) == []
    docs = render_docs(values)
    assert not [d for d in docs if d["kind"] == "ClusterStorageContainer"]
