"""`python -m rollout` against a real `mlflow server` and a loopback Kubernetes API (contract.py):
a promotion (the alias moving) becomes a storageUri pin, hence a new KServe revision; a canary is
pinned the same way; rollback moves the alias back and re-pins; and every failure exits non-zero
with one line that says the promotion stands and which command converges."""

from __future__ import annotations

from pathlib import Path

import pytest

from bundle.fetch import fetch
from rollout.__main__ import EXIT_REFUSED, main
from tests.integration.rollout.contract import NAMESPACE, SA_TOKEN, KubeIsvcContract, inference_service
from tests.integration.servers import MlflowServer
from tests.integration.storage.test_fetch import NAME, log_version
from tests.tiny_bundle import write_tiny_bundle

pytestmark = pytest.mark.slow
ALIAS_URI = f"models:/{NAME}@champion"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A real MLflow server with versions 1, 2 and 3 of the tiny bundle; champion -> 1."""
    from mlflow import MlflowClient

    tmp = tmp_path_factory.mktemp("rollout")
    server = MlflowServer(tmp / "mlflow").wait_up()
    try:
        bundle = tmp / "bundle"
        write_tiny_bundle(bundle)
        assert [log_version(server.url, bundle) for _ in range(3)] == ["1", "2", "3"]
        MlflowClient(server.url, server.url).set_registered_model_alias(NAME, "champion", "1")
        yield server
    finally:
        server.stop()


@pytest.fixture
def kube(tmp_path):
    contract = KubeIsvcContract(allowed={NAME})
    yield contract
    contract.close()


@pytest.fixture
def alias(registry):
    """Move an alias as the gate does; champion is back at 1 after each test."""
    from mlflow import MlflowClient

    client = MlflowClient(registry.url, registry.url)
    yield lambda name, version: client.set_registered_model_alias(NAME, name, str(version))
    client.set_registered_model_alias(NAME, "champion", "1")


def rollout(registry, kube, tmp_path: Path, *args: str, token: str = SA_TOKEN) -> int:
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    common = ["--tracking-uri", registry.url, "--namespace", NAMESPACE, "--api-server", kube.url]
    common += ["--sa-token-path", str(token_file), "--ca-path", "null", "--retry-delay-s", "0"]
    return main([args[0], "--model", NAME, *args[1:], *common])


def uri(kube, role: str = "stable") -> str:
    spec = kube.objects[NAME]["spec"]
    predictor = spec["canary"][0]["predictor"] if role == "canary" else spec["predictor"]
    return predictor["model"]["storageUri"]


def test_promotion_pins_the_version_and_is_a_new_revision_once(registry, kube, alias, tmp_path, capsys):
    kube.objects[NAME] = inference_service(NAME, ALIAS_URI)
    assert rollout(registry, kube, tmp_path, "pin", "--alias", "champion") == 0
    assert uri(kube) == f"models:/{NAME}/1" and kube.objects[NAME]["metadata"]["generation"] == 2
    [patch] = kube.patches()
    assert patch["content_type"] == "application/merge-patch+json"
    assert patch["authorization"] == f"Bearer {SA_TOKEN}"
    assert f"{ALIAS_URI} -> models:/{NAME}/1" in capsys.readouterr().out

    # The gate refused the next model (alias unchanged): the same pin is a no-op, no revision.
    assert rollout(registry, kube, tmp_path, "pin", "--alias", "champion") == 0
    assert len(kube.patches()) == 1 and kube.objects[NAME]["metadata"]["generation"] == 2
    assert "nothing to roll out" in capsys.readouterr().out

    alias("champion", 3)  # the gate promoted version 3
    assert rollout(registry, kube, tmp_path, "pin", "--alias", "champion") == 0
    assert uri(kube) == f"models:/{NAME}/3" and kube.objects[NAME]["metadata"]["generation"] == 3
    # What KServe's storage initializer then fetches is exactly that version.
    version, _ = fetch(uri(kube), tmp_path / "mnt-models", registry.url)
    assert version == "3"


def test_standard_canary_pins_the_named_canary_only(registry, kube, alias, tmp_path):
    stable = f"models:/{NAME}/1"
    kube.objects[NAME] = inference_service(NAME, stable, canary_uri=f"models:/{NAME}@challenger")
    alias("challenger", 2)
    assert (
        rollout(registry, kube, tmp_path, "pin", "--alias", "champion", "--canary-alias", "challenger") == 0
    )
    assert uri(kube) == stable and uri(kube, "canary") == f"models:/{NAME}/2"
    [patch] = kube.patches()  # the stable one already served version 1
    assert patch["content_type"] == "application/json-patch+json"
    assert patch["body"][0] == {"op": "test", "path": "/spec/canary/0/predictor/name", "value": "canary"}
    assert kube.objects[NAME]["spec"]["canary"][0]["trafficPercent"] == 10


def test_knative_canary_is_a_revision_with_traffic_and_the_champion_pin_ends_it(
    registry, kube, alias, tmp_path
):
    kube.objects[NAME] = inference_service(NAME, f"models:/{NAME}/1", mode="Serverless")
    alias("challenger", 2)
    assert (
        rollout(registry, kube, tmp_path, "pin", "--canary-alias", "challenger", "--traffic-percent", "20")
        == 0
    )
    predictor = kube.objects[NAME]["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 20 and predictor["model"]["storageUri"] == f"models:/{NAME}/2"
    alias("champion", 2)  # the challenger won: promote it
    assert rollout(registry, kube, tmp_path, "pin", "--alias", "champion") == 0
    predictor = kube.objects[NAME]["spec"]["predictor"]
    assert "canaryTrafficPercent" not in predictor and predictor["model"]["storageUri"] == f"models:/{NAME}/2"


def test_rollback_moves_the_alias_back_and_re_pins(registry, kube, alias, tmp_path):
    from mlflow import MlflowClient

    alias("champion", 3)
    kube.objects[NAME] = inference_service(NAME, f"models:/{NAME}/3")
    assert rollout(registry, kube, tmp_path, "rollback", "--version", "2") == 0
    client = MlflowClient(registry.url, registry.url)
    assert client.get_model_version_by_alias(NAME, "champion").version == "2"
    assert uri(kube) == f"models:/{NAME}/2"
    # promote is the same move forwards (a canary's version becoming the champion)
    assert rollout(registry, kube, tmp_path, "promote", "--version", "3") == 0
    assert client.get_model_version_by_alias(NAME, "champion").version == "3"
    assert uri(kube) == f"models:/{NAME}/3"
    # a version that does not exist moves nothing
    assert rollout(registry, kube, tmp_path, "rollback", "--version", "99") == 3
    assert client.get_model_version_by_alias(NAME, "champion").version == "3"


def test_a_refused_patch_fails_loudly_and_leaves_the_promotion(registry, kube, alias, tmp_path, capsys):
    from mlflow import MlflowClient

    kube.allowed = {"some-other-model"}  # the Role's resourceNames miss this InferenceService
    kube.objects[NAME] = inference_service(NAME, ALIAS_URI)
    alias("champion", 2)
    assert rollout(registry, kube, tmp_path, "pin", "--alias", "champion") == EXIT_REFUSED
    err = capsys.readouterr().err
    assert "refused with 403" in err and "cannot get resource" in err
    assert "a promotion stands" in err and "python -m rollout pin --model" in err
    assert (
        MlflowClient(registry.url, registry.url).get_model_version_by_alias(NAME, "champion").version == "2"
    )
    assert uri(kube) == ALIAS_URI


def test_wrong_token_is_refused(registry, kube, tmp_path, capsys):
    kube.objects[NAME] = inference_service(NAME, ALIAS_URI)
    assert rollout(registry, kube, tmp_path, "pin", "--alias", "champion", token="stale") == EXIT_REFUSED
    assert "401" in capsys.readouterr().err and uri(kube) == ALIAS_URI


def test_transient_api_errors_are_retried_then_reported(registry, kube, tmp_path, capsys):
    kube.objects[NAME] = inference_service(NAME, ALIAS_URI)
    kube.fail_next = [503, 503]
    assert rollout(registry, kube, tmp_path, "pin", "--alias", "champion") == 0
    assert uri(kube) == f"models:/{NAME}/1"

    kube.objects[NAME] = inference_service(NAME, ALIAS_URI)
    kube.fail_next = [503] * 4
    assert rollout(registry, kube, tmp_path, "pin", "--alias", "champion", "--attempts", "4") == 5
    assert "failed 4 times, last: 503" in capsys.readouterr().err and uri(kube) == ALIAS_URI


def test_missing_alias_isvc_or_canary_exit_non_zero(registry, kube, tmp_path, capsys):
    kube.objects[NAME] = inference_service(NAME, ALIAS_URI)
    assert rollout(registry, kube, tmp_path, "pin", "--alias", "nobody") == 3
    assert "has no alias 'nobody'" in capsys.readouterr().err
    assert rollout(registry, kube, tmp_path, "pin", "--canary-alias", "champion") == 2
    assert "no canary predictor" in capsys.readouterr().err
    del kube.objects[NAME]
    assert rollout(registry, kube, tmp_path, "pin", "--alias", "champion") == 3
    assert "not found" in capsys.readouterr().err
    assert not kube.patches()


@pytest.mark.parametrize("role", ["stable", "canary"])
def test_a_patch_that_meets_a_newer_version_is_planned_again_on_a_fresh_read(
    registry, kube, alias, tmp_path, role
):
    """KServe's controller writes the InferenceService's status between our read and our patch: the
    patch names the resourceVersion it was planned on, the API server answers 409 Conflict, and the
    pin reads the object again, plans again and patches once more (merge patch and JSON patch)."""
    canary = f"models:/{NAME}@challenger" if role == "canary" else None
    kube.objects[NAME] = inference_service(NAME, ALIAS_URI, canary_uri=canary)
    alias("challenger", 2)
    kube.before_next("PATCH", lambda request: kube.touch(kube.objects[NAME]))
    flag = "--canary-alias" if role == "canary" else "--alias"
    assert rollout(registry, kube, tmp_path, "pin", flag, "challenger" if canary else "champion") == 0
    first, second = kube.patches()
    versions = [
        p["body"]["metadata"]["resourceVersion"] if isinstance(p["body"], dict) else p["body"][-1]["value"]
        for p in (first, second)
    ]
    assert versions[0] == "1" and versions[1] not in ("1", kube.objects[NAME]["metadata"]["resourceVersion"])
    assert len(kube.by_method("GET")) == 2  # a fresh read before the second plan
    assert uri(kube, role) == f"models:/{NAME}/{2 if canary else 1}"


def test_a_pin_that_keeps_meeting_newer_versions_gives_up_bounded(registry, kube, tmp_path, capsys):
    kube.objects[NAME] = inference_service(NAME, ALIAS_URI)
    for _ in range(3):
        kube.before_next("PATCH", lambda request: kube.touch(kube.objects[NAME]))
    assert rollout(registry, kube, tmp_path, "pin", "--alias", "champion", "--attempts", "3") == 5
    assert len(kube.patches()) == 3 and uri(kube) == ALIAS_URI
    err = capsys.readouterr().err
    assert "409 (Operation cannot be fulfilled" in err and "a promotion stands" in err
