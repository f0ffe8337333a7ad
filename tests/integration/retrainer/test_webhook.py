"""The real receiver (python -m retrainer) fed Alertmanager's webhook payload (version 4), talking
to the recorded Kubernetes API contract."""

from __future__ import annotations

import copy
import json
import re
import sys

import pytest
import requests

from tests.integration.retrainer.contract import CRONJOB, NAMESPACE, SA_TOKEN, KubeContract
from tests.integration.servers import Process, free_port, wait_for

pytestmark = pytest.mark.slow
TOKEN = "alertmanager-shared-secret"
PAYLOAD = {
    "version": "4",
    "groupKey": '{}:{alertname="ForecasterRealizedMAEHigh"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "forecaster-retrain",
    "groupLabels": {"alertname": "ForecasterRealizedMAEHigh"},
    "commonLabels": {"alertname": "ForecasterRealizedMAEHigh", "model": "petr4", "severity": "warning"},
    "commonAnnotations": {"summary": "realized MAE 1.4x naive"},
    "externalURL": "http://alertmanager.monitoring:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "ForecasterRealizedMAEHigh", "model": "petr4", "severity": "warning",
                       "action": "retrain", "namespace": NAMESPACE, "version": "7"},
            "annotations": {"summary": "realized MAE 1.4x naive", "runbook_url": "docs/runbook.md#x"},
            "startsAt": "2026-11-27T21:45:00.000Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.monitoring:9090/graph?g0.expr=forecaster_realized_mae_ratio",
            "fingerprint": "5d2c1e0b9a8f7e6d",
        }
    ],
}  # fmt: skip


@pytest.fixture
def stack(tmp_path):
    api = KubeContract()
    token_file = tmp_path / "token"
    token_file.write_text(SA_TOKEN + "\n")
    port = free_port()
    env = {
        "FORECASTER_RETRAINER_TOKEN": TOKEN, "FORECASTER_RETRAINER_NAMESPACE": NAMESPACE,
        "FORECASTER_RETRAINER_CRONJOBS": json.dumps({"petr4": "petr4-retrain"}),
        "FORECASTER_RETRAINER_API_SERVER": api.url, "FORECASTER_RETRAINER_SA_TOKEN_PATH": str(token_file),
        "FORECASTER_RETRAINER_PORT": str(port), "FORECASTER_RETRAINER_HOST": "127.0.0.1",
    }  # fmt: skip
    proc = Process([sys.executable, "-m", "retrainer"], tmp_path / "retrainer.log", env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(url + "/healthz", timeout=2).ok, 30, "retrainer", proc.proc)
        yield url, api
    finally:
        proc.stop()
        api.close()


def post(url: str, payload, token: str | None = TOKEN) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(url + "/alerts", json=payload, headers=headers, timeout=10)


def test_one_firing_alert_creates_exactly_one_correct_job(stack):
    url, api = stack
    response = post(url, PAYLOAD)
    assert response.status_code == 200, response.text
    started = response.json()["retraining"]["petr4-retrain"]
    (create,) = api.posts()
    assert create["path"] == f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs"
    assert create["authorization"] == f"Bearer {SA_TOKEN}"  # the service account's token, not Alertmanager's
    job = create["body"]
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert job["spec"] == CRONJOB["spec"]["jobTemplate"]["spec"]  # the CronJob's template, unchanged
    owner = job["metadata"]["ownerReferences"][0]
    assert owner == {"apiVersion": "batch/v1", "kind": "CronJob", "name": "petr4-retrain",
                     "uid": CRONJOB["metadata"]["uid"], "controller": True}  # fmt: skip
    assert job["metadata"]["labels"]["forecaster.io/trigger"] == "alert"
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    # The Job's name is the CronJob's, the trigger and a UTC timestamp (a DNS label; the truncation
    # of long CronJob names is pinned in tests/unit/retrainer/test_kube.py), and the answer names it.
    assert re.fullmatch(r"petr4-retrain-alert-20\d{12}", job["metadata"]["name"])
    assert started == f"started {job['metadata']['name']}"


def test_duplicate_while_running_is_ignored_then_allowed_after_completion(stack):
    url, api = stack
    assert post(url, PAYLOAD).ok
    again = post(url, PAYLOAD)
    assert again.ok and again.json()["retraining"]["petr4-retrain"].startswith("already running")
    assert len(api.posts()) == 1
    api.finish_jobs()
    assert post(url, PAYLOAD).json()["retraining"]["petr4-retrain"].startswith("started")
    assert len(api.posts()) == 2


def test_concurrent_duplicates_create_one_job(stack):
    from concurrent.futures import ThreadPoolExecutor

    url, api = stack
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: post(url, PAYLOAD), range(6)))
    assert all(a.ok for a in answers)
    assert len(api.posts()) == 1


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_unauthenticated_call_is_refused_and_touches_nothing(stack, token):
    url, api = stack
    response = post(url, PAYLOAD, token=token)
    assert response.status_code == 401
    assert api.requests == []


def test_resolved_or_unrelated_alerts_do_nothing(stack):
    url, api = stack
    resolved = copy.deepcopy(PAYLOAD)
    resolved["status"] = resolved["alerts"][0]["status"] = "resolved"
    other = copy.deepcopy(PAYLOAD)
    other["alerts"][0]["labels"]["alertname"] = "ForecasterLatencyP99High"
    del other["alerts"][0]["labels"]["action"]  # only `action: retrain` retrains, whatever the name
    unknown_model = copy.deepcopy(PAYLOAD)
    unknown_model["alerts"][0]["labels"]["model"] = "vale3"
    for payload in (resolved, other, unknown_model):
        response = post(url, payload)
        assert response.ok and response.json()["retraining"] == {}
    assert api.posts() == []


def test_malformed_payload_is_a_400(stack):
    url, api = stack
    assert post(url, {"alerts": "nope"}).status_code == 400
    response = requests.post(
        url + "/alerts", data=b"{", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
    )
    assert response.status_code == 400 and api.posts() == []
