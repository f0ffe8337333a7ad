"""rollout.plan: which patch pins which predictor, and when there is nothing to roll out."""

from __future__ import annotations

import pytest

from retrainer.kube import JSON_PATCH, MERGE_PATCH
from rollout.plan import PlanError, plan
from tests.integration.rollout.contract import inference_service, json_patch, merge_patch

URI = "models:/m/4"


def apply(isvc: dict, patch) -> dict:
    return (
        merge_patch(isvc, patch.body) if patch.content_type == MERGE_PATCH else json_patch(isvc, patch.body)
    )


def test_stable_pin_is_a_merge_patch_and_idempotent():
    isvc = inference_service("m", "models:/m@champion")
    patch = plan(isvc, "stable", URI)
    assert patch.content_type == MERGE_PATCH and patch.before == "models:/m@champion"
    pinned = apply(isvc, patch)
    assert pinned["spec"]["predictor"]["model"]["storageUri"] == URI
    assert pinned["spec"]["predictor"]["model"]["name"] == "kserve-container"  # merged, not replaced
    assert plan(pinned, "stable", URI) is None


def test_standard_canary_patch_finds_the_named_canary_wherever_it_is():
    isvc = inference_service("m", "models:/m/3", canary_uri="models:/m@challenger")
    other = {"trafficPercent": 5, "predictor": {"name": "shadow", "model": {"storageUri": "models:/m/1"}}}
    isvc["spec"]["canary"].insert(0, other)
    patch = plan(isvc, "canary", URI)
    assert patch.content_type == JSON_PATCH and patch.body[0]["path"] == "/spec/canary/1/predictor/name"
    pinned = apply(isvc, patch)
    assert pinned["spec"]["canary"][1]["predictor"]["model"]["storageUri"] == URI
    assert pinned["spec"]["canary"][0] == other and pinned["spec"]["predictor"] == isvc["spec"]["predictor"]
    assert plan(pinned, "canary", URI) is None


def test_knative_stable_pin_ends_a_canary_even_with_the_same_uri():
    isvc = inference_service("m", "models:/m/3", mode="Serverless", canary_uri=URI)
    patch = plan(isvc, "stable", URI)  # the canary's version became the champion
    pinned = apply(isvc, patch)
    assert "canaryTrafficPercent" not in pinned["spec"]["predictor"]
    assert plan(pinned, "stable", URI) is None
    canary = plan(pinned, "canary", "models:/m/5", traffic_percent=15)
    assert canary.body["spec"]["predictor"]["canaryTrafficPercent"] == 15


@pytest.mark.parametrize("mode", ["Standard", "RawDeployment"])
def test_refusals_name_the_problem(mode):
    isvc = inference_service("m", "models:/m/3", mode=mode)
    with pytest.raises(PlanError, match="no canary predictor named 'canary'"):
        plan(isvc, "canary", URI)
    del isvc["spec"]["predictor"]["model"]
    with pytest.raises(PlanError, match="delivery=storageUri"):
        plan(isvc, "stable", URI)


def test_every_patch_names_the_resource_version_it_was_planned_on():
    """The API server then refuses it with 409 Conflict if the InferenceService changed since."""
    for isvc, role in [
        (inference_service("m", "models:/m/3"), "stable"),
        (inference_service("m", "models:/m/3", mode="Serverless"), "canary"),
        (inference_service("m", "models:/m/3", canary_uri="models:/m/2"), "canary"),
    ]:
        isvc["metadata"]["resourceVersion"] = "4711"
        patch = plan(isvc, role, URI)
        locked = patch.body["metadata"] if patch.content_type == MERGE_PATCH else patch.body[-1]
        assert locked in ({"resourceVersion": "4711"}, {"op": "replace", "path": "/metadata/resourceVersion",
                                                        "value": "4711"})  # fmt: skip
        assert apply(isvc, patch)["metadata"]["resourceVersion"] == "4711"
