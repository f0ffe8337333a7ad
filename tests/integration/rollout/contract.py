"""The rollout's side of the shared fake Kubernetes API (tests/kube_api.py): InferenceServices as the
chart renders them, GET and PATCH (JSON merge patch and JSON patch) with the Role's resourceNames
(403 outside them), and `metadata.generation` bumped only when the spec changes (what starts a
KServe rollout)."""

from __future__ import annotations

from tests.kube_api import NAMESPACE, SA_TOKEN, KubeApi, json_patch, merge_patch

__all__ = ["NAMESPACE", "SA_TOKEN", "KubeIsvcContract", "inference_service", "json_patch", "merge_patch"]


def inference_service(name: str, uri: str, mode: str = "Standard", canary_uri: str | None = None) -> dict:
    """The shape the chart renders (templates/predictor/inferenceservice.yaml), trimmed to what matters."""
    model = {"name": "kserve-container", "modelFormat": {"name": "petr4-forecaster-bundle"}}
    isvc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "generation": 1,
            "resourceVersion": "1",
            "annotations": {"serving.kserve.io/deploymentMode": mode},
        },
        "spec": {"predictor": {"minReplicas": 1, "model": {**model, "storageUri": uri}}},
    }
    if canary_uri and mode == "Standard":
        canary = {"name": "canary", "model": {**model, "storageUri": canary_uri}}
        isvc["spec"]["canary"] = [{"trafficPercent": 10, "predictor": canary}]
    elif canary_uri:
        isvc["spec"]["predictor"]["canaryTrafficPercent"] = 10
        isvc["spec"]["predictor"]["model"]["storageUri"] = canary_uri
    return isvc


class KubeIsvcContract(KubeApi):
    """The shared fake API server holding InferenceServices; `allowed` is the Role's resourceNames."""

    def __init__(self, allowed: set[str]) -> None:
        super().__init__(user=f"system:serviceaccount:{NAMESPACE}:training")
        self.allowed = allowed

    @property
    def allowed(self) -> set[str]:
        return self.resource_names["inferenceservices"]

    @allowed.setter
    def allowed(self, names: set[str]) -> None:
        self.resource_names["inferenceservices"] = names

    @property
    def objects(self) -> dict[str, dict]:
        return self.collection("serving.kserve.io/v1beta1", "inferenceservices")

    def patches(self) -> list[dict]:
        return self.by_method("PATCH")
