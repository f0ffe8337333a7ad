"""The retrainer's Kubernetes logic: which Jobs count as running, the Job it builds, and the client
(TLS verification, the service-account token, HTTP errors, labelSelector, pages, 409s) against the
shared fake API server (tests/kube_api.py)."""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from lightkube import ApiError

from retrainer.app import start_one
from retrainer.kube import CRONJOB_LABEL, TRIGGER_LABEL, KubeClient, job_from_cronjob, running_jobs
from retrainer.settings import RetrainerSettings
from tests.integration.retrainer.contract import CRONJOB, NAMESPACE, SA_TOKEN, KubeContract
from tests.kube_api import KubeApi

UID = CRONJOB["metadata"]["uid"]
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def job(name: str, owner_uid: str | None = None, conditions=None, labels=None, status=True) -> dict:
    meta: dict = {"name": name}
    if owner_uid:
        meta["ownerReferences"] = [{"uid": owner_uid}]
    if labels:
        meta["labels"] = labels
    out: dict = {"metadata": meta}
    if status:
        out["status"] = {"conditions": conditions or []}
    return out


def test_job_name_is_valid_and_dated():
    built = job_from_cronjob(CRONJOB, datetime(2026, 11, 27, 21, 45, 7, tzinfo=UTC))
    assert built["metadata"]["name"] == "petr4-retrain-alert-20261127214507"
    assert built["metadata"]["namespace"] == "forecaster"


def test_running_jobs_are_those_of_this_cronjob_not_finished():
    jobs = [
        job("scheduled-running", UID),
        job("done", UID, [{"type": "Complete", "status": "True"}]),
        job("failed", UID, [{"type": "Failed", "status": "True"}]),
        job("other-cronjob", "another-uid"),
    ]
    assert running_jobs(jobs, CRONJOB) == ["scheduled-running"]


@pytest.mark.parametrize(
    "conditions",
    [
        [{"type": "Suspended", "status": "True"}],  # paused, not finished: a new Job would duplicate it
        [{"type": "FailureTarget", "status": "True"}],  # about to fail, pods still terminating
        [{"type": "Complete", "status": "False"}],
        [{"type": "Failed", "status": "Unknown"}],
    ],
    ids=["suspended", "failure-target", "complete-false", "failed-unknown"],
)
def test_only_complete_or_failed_true_means_finished(conditions):
    assert running_jobs([job("j", UID, conditions)], CRONJOB) == ["j"]


def test_a_finished_condition_among_others_is_finished():
    conditions = [{"type": "Suspended", "status": "False"}, {"type": "Complete", "status": "True"}]
    assert running_jobs([job("j", UID, conditions)], CRONJOB) == []


def test_jobs_are_matched_by_owner_or_by_label():
    jobs = [
        job("by-label", labels={CRONJOB_LABEL: "petr4-retrain"}),
        job("other-label", labels={CRONJOB_LABEL: "another-cronjob"}),
        job("no-status-yet", UID, status=False),
        job("unrelated"),
    ]
    jobs.append({"metadata": {"name": "second-owner", "ownerReferences": [{"uid": "x"}, {"uid": UID}]}})
    assert running_jobs(jobs, CRONJOB) == ["by-label", "no-status-yet", "second-owner"]


def test_the_cronjobs_active_record_counts_once():
    cronjob = copy.deepcopy(CRONJOB)
    cronjob["status"] = {"active": [{"name": "scheduled-1"}, {"name": "by-label"}]}
    jobs = [
        job(
            "by-label",
            labels={CRONJOB_LABEL: "petr4-retrain"},
            conditions=[{"type": "Complete", "status": "True"}],
        )
    ]
    assert running_jobs(jobs, cronjob) == ["scheduled-1"]  # a listed Job's own status wins over the record


def test_long_cronjob_name_gives_a_valid_job_name():
    """CronJob names go up to 52 characters; a Job name must be a DNS label of at most 63."""
    cronjob = copy.deepcopy(CRONJOB)
    cronjob["metadata"]["name"] = "a" * 50 + "-z"
    name = job_from_cronjob(cronjob, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))["metadata"]["name"]
    assert name == "a" * 38 + "-alert-20260102030405"
    assert len(name) <= 63 and DNS_LABEL.match(name)


def test_job_is_the_cronjob_template_owned_and_labelled():
    built = job_from_cronjob(CRONJOB, datetime(2026, 1, 2, tzinfo=UTC), reason="manual")
    template = CRONJOB["spec"]["jobTemplate"]
    assert built["apiVersion"] == "batch/v1" and built["kind"] == "Job"
    assert built["spec"] == template["spec"]
    meta = built["metadata"]
    assert meta["labels"] == {**template["metadata"]["labels"], CRONJOB_LABEL: "petr4-retrain",
                              TRIGGER_LABEL: "manual"}  # fmt: skip
    assert meta["annotations"] == {"cronjob.kubernetes.io/instantiate": "manual"}
    assert meta["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "petr4-retrain",
                                        "uid": UID, "controller": True}]  # fmt: skip
    assert running_jobs([built], CRONJOB) == [meta["name"]]  # the receiver sees its own Job as running


def test_template_annotations_are_kept():
    cronjob = copy.deepcopy(CRONJOB)
    cronjob["spec"]["jobTemplate"]["metadata"]["annotations"] = {"team": "quant"}
    annotations = job_from_cronjob(cronjob)["metadata"]["annotations"]
    assert annotations == {"team": "quant", "cronjob.kubernetes.io/instantiate": "manual"}


def test_job_name_defaults_to_the_current_utc_time():
    before = datetime.now(UTC).replace(microsecond=0)
    name = job_from_cronjob(CRONJOB)["metadata"]["name"]
    after = datetime.now(UTC)
    stamp = datetime.strptime(name.rsplit("-", 1)[1], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    assert before <= stamp <= after


# --- the client, against in-process API servers ---------------------------------------------------


def settings(api_server: str, token_file: Path, **kw) -> RetrainerSettings:
    return RetrainerSettings(token="t", namespace=NAMESPACE, cronjobs={"petr4": "petr4-retrain"},
                             api_server=api_server, sa_token_path=str(token_file), **kw)  # fmt: skip


@pytest.fixture(scope="module")
def api_server() -> Iterator[KubeContract]:
    api = KubeContract()
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def contract(api_server, tmp_path) -> tuple[KubeContract, Path]:
    """The recorded API contract, emptied for each test, and a service-account token file."""
    api_server.requests.clear()
    api_server.jobs.clear()
    token = tmp_path / "token"
    token.write_text(SA_TOKEN + "\n")  # the kubelet's file ends with a newline
    return api_server, token


def test_the_three_calls_with_the_service_account_token(contract):
    api, token = contract
    client = KubeClient(settings(api.url, token))  # default ca_path: ignored for plain http
    assert client.get_cronjob("petr4-retrain") == CRONJOB
    assert client.list_jobs() == []
    created = client.create_job(job_from_cronjob(CRONJOB))
    assert created["metadata"]["uid"] == "job-0"
    assert [j["metadata"]["name"] for j in client.list_jobs()] == [created["metadata"]["name"]]
    assert [r["authorization"] for r in api.requests] == [f"Bearer {SA_TOKEN}"] * 4
    assert api.posts()[0]["body"] == job_from_cronjob(CRONJOB, now=_stamp(created))


def _stamp(created: dict) -> datetime:
    return datetime.strptime(created["metadata"]["name"][-14:], "%Y%m%d%H%M%S").replace(tzinfo=UTC)


def test_the_token_is_read_again_on_every_call(contract):
    """The kubelet rotates the projected token: a stale copy would start failing after an hour.
    (It is re-read when the API server answers 401, as client-go does, so no call fails for it.)"""
    api, token = contract
    client = KubeClient(settings(api.url, token))
    token.write_text("expired")
    with pytest.raises(httpx.HTTPStatusError) as refused:
        client.list_jobs()
    assert refused.value.response.status_code == 401
    token.write_text(SA_TOKEN)
    assert client.list_jobs() == []


def test_api_errors_are_raised_not_returned(contract):
    api, token = contract
    with pytest.raises(httpx.HTTPStatusError) as missing:
        KubeClient(settings(api.url, token)).get_cronjob("no-such-cronjob")
    assert missing.value.response.status_code == 404
    assert missing.value.status.reason == "NotFound"  # lightkube's ApiError carries the Status


def test_api_calls_are_bounded_in_time(contract):
    api, token = contract
    assert KubeClient(settings(api.url, token)).timeout == httpx.Timeout(10.0)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            KubeClient(settings(url, token), timeout_s=0.3).list_jobs()
        assert time.monotonic() - started < 3


def test_behind_kubectl_proxy_no_token_is_sent():
    """An empty token path (`kubectl proxy` authenticates): no Authorization header at all."""
    api = KubeContract(token=None)
    try:
        proxied = RetrainerSettings(token="t", namespace=NAMESPACE, cronjobs={}, api_server=api.url,
                                    sa_token_path="")  # fmt: skip
        client = KubeClient(proxied)
        assert client.get_cronjob("petr4-retrain") == CRONJOB
        assert [r["authorization"] for r in api.requests] == [None]
    finally:
        api.close()


def test_jobs_are_listed_with_a_label_selector(contract):
    api, token = contract
    for name, cronjob in [("a-1", "petr4-retrain"), ("b-1", "vale3-retrain"), ("c-1", "petr4-retrain")]:
        api.jobs[name] = {"metadata": {"name": name, "labels": {CRONJOB_LABEL: cronjob}}}
    api.jobs["d-1"] = {"metadata": {"name": "d-1"}}
    listed = KubeClient(settings(api.url, token)).list_jobs({CRONJOB_LABEL: "petr4-retrain"})
    assert [j["metadata"]["name"] for j in listed] == ["a-1", "c-1"]
    [request] = api.requests
    assert request["query"]["labelSelector"] == f"{CRONJOB_LABEL}=petr4-retrain"


def test_a_list_longer_than_a_page_is_followed_to_its_end(contract):
    api, token = contract
    for i in range(5):
        api.jobs[f"job-{i}"] = {"metadata": {"name": f"job-{i}", "labels": {CRONJOB_LABEL: "petr4-retrain"}}}
    client = KubeClient(settings(api.url, token))
    client.page_size = 2
    listed = client.list_jobs({CRONJOB_LABEL: "petr4-retrain"})
    assert [j["metadata"]["name"] for j in listed] == [f"job-{i}" for i in range(5)]
    assert [r["query"].get("limit") for r in api.requests] == ["2", "2", "2"]
    assert "continue" not in api.requests[0]["query"]
    assert all(r["query"]["continue"] for r in api.requests[1:])  # the server's token, passed back
    assert KubeClient.page_size == 500  # in production: kubectl's chunk size


def test_creating_a_job_that_exists_is_a_409_already_exists(contract):
    api, token = contract
    client = KubeClient(settings(api.url, token))
    job = job_from_cronjob(CRONJOB)
    client.create_job(job)
    with pytest.raises(ApiError) as conflict:
        client.create_job(job)
    assert (conflict.value.status.code, conflict.value.status.reason) == (409, "AlreadyExists")
    assert list(api.jobs) == [job["metadata"]["name"]]


def test_a_concurrent_create_of_the_same_job_is_not_a_crash_nor_a_second_job(contract):
    """Another replica (or a repeated alert) creates the same Job between our list and our create."""
    api, token = contract
    racer = copy.deepcopy  # the other replica posts the very same Job a moment earlier
    api.before_next("POST", lambda request: api.jobs.update({request["body"]["metadata"]["name"]:
                                                              racer(request["body"])}))  # fmt: skip
    answer = start_one(KubeClient(settings(api.url, token)), "petr4-retrain")
    [name] = api.jobs
    assert answer == f"already running: {name}"
    assert len(api.posts()) == 1 and name.startswith("petr4-retrain-alert-")


def test_a_scheduled_job_counts_through_the_cronjob_status(contract):
    """The CronJob controller copies only the template's labels onto its Jobs: the label selector
    cannot see them, the CronJob's `status.active` does."""
    api, token = contract
    cronjob = api.collection("batch/v1", "cronjobs")["petr4-retrain"]
    cronjob["status"] = {
        "active": [{"kind": "Job", "name": "petr4-retrain-29412345", "namespace": NAMESPACE}]
    }
    try:
        answer = start_one(KubeClient(settings(api.url, token)), "petr4-retrain")
    finally:
        del cronjob["status"]
    assert answer == "already running: petr4-retrain-29412345" and api.posts() == []


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 with a self-signed certificate: (url, its CA file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    tmp = tmp_path_factory.mktemp("tls")
    cert_file, key_file = tmp / "ca.crt", tmp / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    api = KubeApi(ssl_context=context)
    try:
        yield api.url, cert_file
    finally:
        api.close()


def test_tls_is_verified_against_the_configured_ca(tls_server, tmp_path):
    url, ca = tls_server
    token = tmp_path / "token"
    token.write_text(SA_TOKEN)
    assert KubeClient(settings(url, token, ca_path=str(ca))).list_jobs() == []


def test_tls_is_verified_by_default_even_without_a_ca_path(tls_server, tmp_path):
    """No CA path means the system trust store, never 'no verification': an unknown server is refused."""
    url, _ = tls_server
    token = tmp_path / "token"
    token.write_text(SA_TOKEN)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        KubeClient(settings(url, token, ca_path=None)).list_jobs()
