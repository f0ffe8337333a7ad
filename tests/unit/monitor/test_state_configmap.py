"""The calibration state's ConfigMap store (monitor/state_configmap.py) against the shared fake
Kubernetes API (tests/kube_api.py): get and JSON merge patch of its own key only, the resourceVersion
read as the patch's precondition (a 409 reads it again), 403 outside the Role's resourceNames, 404
for a ConfigMap the chart did not create, and never an older state over a newer one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from bundle.online import History, ModelIdentity, OnlineState, Session, initial_state, update
from monitor.state_configmap import ConfigMapStore, StoreError
from retrainer.kube import KubeClient
from retrainer.settings import KubeAccess
from tests.kube_api import NAMESPACE, SA_TOKEN, KubeApi, StatusError

NAME = "petr4-forecaster-calibration-{model}"
MODEL = "petr4-sa-forecaster"
CONFIGMAP = NAME.replace("{model}", MODEL)
IDENTITY = ModelIdentity(model_name=MODEL, model_version="7", bundle_sha256="ab" * 32)


def history(n: int = 400) -> History:
    rng = np.random.default_rng(2)
    close = 30 * np.exp(np.cumsum(rng.standard_normal(n) * 0.01))
    return History([date(2020, 1, 1) + timedelta(days=i) for i in range(n)], close)


HISTORY = history()
STATE = initial_state(IDENTITY, HISTORY, np.r_[np.nan, HISTORY.close[:-1]], window=60, sigma_floor=1e-4,
                      now=datetime(2021, 2, 4, 22, tzinfo=UTC))  # fmt: skip
NEXT = update(STATE, Session(STATE.as_of + timedelta(days=1), 31.0), 30.0)


@pytest.fixture
def api(tmp_path) -> Iterator[tuple[KubeApi, ConfigMapStore]]:
    """The fake API holding the chart's ConfigMap (no data), the monitor's Role granting its name."""
    server = KubeApi(user=f"system:serviceaccount:{NAMESPACE}:petr4-forecaster-monitor")
    server.collection("v1", "configmaps")[CONFIGMAP] = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": CONFIGMAP, "namespace": NAMESPACE, "resourceVersion": "5"},
    }  # fmt: skip
    server.resource_names["configmaps"] = {CONFIGMAP}
    token = tmp_path / "token"
    token.write_text(SA_TOKEN + "\n")
    access = KubeAccess(namespace=NAMESPACE, api_server=server.url, sa_token_path=str(token), ca_path=None)
    try:
        yield server, ConfigMapStore(KubeClient(access), NAME)
    finally:
        server.close()


def stored(server: KubeApi) -> dict:
    return server.collection("v1", "configmaps")[CONFIGMAP]


def test_a_configmap_without_data_holds_no_state_and_a_write_patches_only_its_key(api):
    server, store = api
    stored(server)["data"] = {"other-forecaster.json": "{}"}  # another model's key: left alone
    assert store.read(MODEL) is None
    store.write(MODEL, STATE)
    (patch,) = server.by_method("PATCH")
    assert patch["content_type"] == "application/merge-patch+json"
    assert patch["path"] == f"/api/v1/namespaces/{NAMESPACE}/configmaps/{CONFIGMAP}"
    assert patch["body"]["metadata"] == {"resourceVersion": "5"}  # the version read: a precondition
    assert set(patch["body"]["data"]) == {f"{MODEL}.json"}
    assert stored(server)["data"]["other-forecaster.json"] == "{}"
    assert OnlineState.model_validate_json(stored(server)["data"][f"{MODEL}.json"]) == STATE
    assert store.read(MODEL) == STATE
    assert [r["method"] for r in server.requests] == ["GET", "GET", "PATCH", "GET"]


def test_a_conflict_reads_the_configmap_again_and_writes_on_the_fresh_version(api):
    server, store = api
    server.before_next("PATCH", lambda _: server.touch(stored(server)))  # someone writes in between
    store.write(MODEL, STATE)
    first, second = server.by_method("PATCH")
    assert first["body"]["metadata"]["resourceVersion"] == "5"
    assert second["body"]["metadata"]["resourceVersion"] == str(server.revision - 1)
    assert OnlineState.model_validate_json(stored(server)["data"][f"{MODEL}.json"]) == STATE


def test_a_configmap_that_keeps_changing_is_a_store_error_after_bounded_tries(api):
    server, store = api
    for _ in range(store.attempts):
        server.before_next("PATCH", lambda _: server.touch(stored(server)))
    with pytest.raises(StoreError, match="changed under each of 4 writes"):
        store.write(MODEL, STATE)
    assert len(server.by_method("PATCH")) == store.attempts and "data" not in stored(server)


def test_a_newer_state_of_the_same_model_is_never_replaced_by_an_older_one(api, caplog):
    server, store = api
    store.write(MODEL, NEXT)
    with caplog.at_level("WARNING", logger="monitor.state_configmap"):
        store.write(MODEL, STATE)  # e.g. a monitor whose source lags
    assert len(server.by_method("PATCH")) == 1
    assert store.read(MODEL) == NEXT
    assert f"holds a newer state (as of {NEXT.as_of})" in caplog.text
    recomputed = OnlineState.model_validate({**NEXT.model_dump(), "close_scale": 1.5})  # same day, new data
    store.write(MODEL, recomputed)
    assert store.read(MODEL) == recomputed


def test_an_api_error_on_the_patch_or_an_unreachable_api_is_a_store_error(api, tmp_path):
    server, store = api

    def etcd_down(_request):
        raise StatusError(500, "InternalError", "etcdserver: leader changed")

    server.before_next("PATCH", etcd_down)
    with pytest.raises(StoreError, match=r"patch ConfigMap .*: 500 \(etcdserver: leader changed\)"):
        store.write(MODEL, STATE)
    token = tmp_path / "token"
    token.write_text(SA_TOKEN)
    closed = KubeAccess(
        namespace=NAMESPACE, api_server="http://127.0.0.1:9", sa_token_path=str(token), ca_path=None
    )
    with pytest.raises(StoreError, match="ConnectError"):
        ConfigMapStore(KubeClient(closed), NAME).read(MODEL)


def test_a_name_outside_the_roles_resource_names_is_forbidden(api):
    server, store = api
    other = ConfigMapStore(store.kube, "somebody-elses-configmap")
    with pytest.raises(StoreError, match=r"get ConfigMap somebody-elses-configmap: 403 \(.* is forbidden"):
        other.write(MODEL, STATE)
    server.resource_names["configmaps"] = set()  # a Role that lost the name
    with pytest.raises(StoreError, match="403"):
        store.read(MODEL)
    assert server.by_method("PATCH") == []


def test_a_missing_configmap_says_the_chart_creates_it(api):
    server, store = api
    del server.collection("v1", "configmaps")[CONFIGMAP]
    with pytest.raises(StoreError, match=r"404 .*the chart creates it"):
        store.read(MODEL)


def test_an_invalid_stored_state_reads_as_none_and_is_replaced(api, caplog):
    server, store = api
    insane = json.loads(STATE.model_dump_json())
    insane["next_sigma"] = -1.0
    stored(server)["data"] = {f"{MODEL}.json": json.dumps(insane)}
    assert store.read(MODEL) is None
    assert "is not a valid state and will be replaced" in caplog.text
    store.write(MODEL, STATE)
    assert store.read(MODEL) == STATE
