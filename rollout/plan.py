"""What to send to pin one predictor of an InferenceService to a model URI (pure, testable).

Standard (RawDeployment) mode: the stable predictor is `spec.predictor`, the canary the named
predictor in `spec.canary[]` (KServe >= 0.20). Knative (Serverless) mode has one predictor spec:
a canary is a new revision of it with `canaryTrafficPercent`, and pinning the stable model rolls
out a revision with all the traffic (the canary ends). A changed `storageUri` is a new revision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from retrainer.kube import JSON_PATCH, MERGE_PATCH

Role = Literal["stable", "canary"]
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
CANARY_NAME = "canary"  # the chart's canary predictor (predictor/_predictor.tpl canaryPredictorSpec)


class PlanError(ValueError):
    """The InferenceService does not have the predictor the pin is for."""


@dataclass(frozen=True)
class Patch:
    content_type: str
    body: dict | list
    before: str | None  # the storageUri it replaces


def is_standard(isvc: dict) -> bool:
    mode = isvc.get("metadata", {}).get("annotations", {}).get(MODE_ANNOTATION, "")
    return mode.lower() in ("standard", "rawdeployment")


def storage_uri(isvc: dict, role: Role) -> str | None:
    """The storageUri that predictor serves now (None when it has none or does not exist)."""
    spec = isvc.get("spec", {})
    if role == "canary" and is_standard(isvc):
        index = _canary_index(isvc)
        return (
            None if index is None else spec["canary"][index]["predictor"].get("model", {}).get("storageUri")
        )
    return spec.get("predictor", {}).get("model", {}).get("storageUri")


def _canary_index(isvc: dict) -> int | None:
    for i, entry in enumerate(isvc.get("spec", {}).get("canary") or []):
        if entry.get("predictor", {}).get("name") == CANARY_NAME:
            return i
    return None


def plan(isvc: dict, role: Role, uri: str, traffic_percent: int = 10) -> Patch | None:
    """The patch pinning `role` to `uri`; None when it already serves it (no new revision)."""
    name = isvc.get("metadata", {}).get("name", "?")
    predictor = isvc.get("spec", {}).get("predictor", {})
    if "model" not in predictor:
        raise PlanError(
            f"InferenceService {name} has no spec.predictor.model: not rendered with delivery=storageUri"
        )
    before = storage_uri(isvc, role)
    lock = {"resourceVersion": isvc.get("metadata", {}).get("resourceVersion")}  # 409 if it moved on
    knative_canary = predictor.get("canaryTrafficPercent")
    if role == "stable":
        if before == uri and (is_standard(isvc) or knative_canary in (None, 100)):
            return None
        body: dict = {"spec": {"predictor": {"model": {"storageUri": uri}}}}
        if not is_standard(isvc) and knative_canary is not None:
            body["spec"]["predictor"]["canaryTrafficPercent"] = None  # all traffic: the canary ends
        return Patch(MERGE_PATCH, {"metadata": lock, **body}, before)
    if not is_standard(isvc):
        if before == uri and knative_canary is not None:
            return None
        percent = knative_canary if knative_canary not in (None, 100) else traffic_percent
        body = {"spec": {"predictor": {"canaryTrafficPercent": percent, "model": {"storageUri": uri}}}}
        return Patch(MERGE_PATCH, {"metadata": lock, **body}, before)
    index = _canary_index(isvc)
    if index is None:
        raise PlanError(
            f"InferenceService {name} has no canary predictor named {CANARY_NAME!r}: enable models[].canary"
        )
    if before == uri:
        return None
    path = f"/spec/canary/{index}/predictor"
    ops = [  # the test guards the index against a concurrent edit of spec.canary
        {"op": "test", "path": f"{path}/name", "value": CANARY_NAME},
        {"op": "add", "path": f"{path}/model/storageUri", "value": uri},  # add = set
        {"op": "replace", "path": "/metadata/resourceVersion", "value": lock["resourceVersion"]},
    ]
    return Patch(JSON_PATCH, ops, before)
