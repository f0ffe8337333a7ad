"""MLflow's read-only port: Debian's nginx running the chart's rendered configuration (only the listen
and upstream addresses substituted) in front of a real `mlflow server` on loopback. Every reader the
chart points at it (the storage initializer's `bundle.fetch`, the predictor with `--model-source
models:/...@champion`, the monitor) works through it, and so do the read-only searches; MLflow's own
client cannot write through it (405, never forwarded), while MLflow's own port (training's) can.
Slow, silent and idle clients are closed within the chart's bounds, a control byte in the path is a
400 logged escaped, too many requests from one client a 503, an unreachable MLflow a 502."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
import requests

from tests.integration.servers import MlflowServer, Predictor, ReadOnlyGuard, free_port, wait_for
from tests.integration.storage.test_fetch import log_version, run_fetch
from tests.tiny_bundle import WINDOW, expected_forecast, windows, write_tiny_bundle

pytestmark = pytest.mark.slow
NAME = "tiny-forecaster"
# The chart's defaults, the bounds this test holds the guard to (values.yaml, checked below):
HEADER_TIMEOUT_S = 10  # values.yaml mlflow.readOnlyGuard.clientHeaderTimeoutSeconds
KEEPALIVE_TIMEOUT_S = 10  # ... keepaliveTimeoutSeconds
PER_CLIENT = 32  # ... maxConnectionsPerClient
MAX_BODY = 64 * 1024  # ... maxBodyKilobytes


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """MLflow with versions 1 (alias champion) and 2 of NAME, and the guard in front of it."""
    from mlflow import MlflowClient

    tmp = tmp_path_factory.mktemp("guard")
    server = MlflowServer(tmp / "mlflow").wait_up()
    guard = None
    try:
        bundle = tmp / "bundle"
        write_tiny_bundle(bundle)
        assert log_version(server.url, bundle) == "1"
        assert log_version(server.url, bundle) == "2"
        MlflowClient(server.url, server.url).set_registered_model_alias(NAME, "champion", "1")
        guard = ReadOnlyGuard(tmp, f"127.0.0.1:{server.port}").wait_up()
        yield server, guard
    finally:
        if guard is not None:
            guard.stop()
        server.stop()


def logged(guard: ReadOnlyGuard, needle: str, status: int | None = None) -> list[dict]:
    """Access-log entries whose request line contains `needle` (and of that status), waiting up to
    5 s for the first: nginx writes a request's line when it has finished with it."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        entries = guard.access_log()
        if found := [e for e in entries if needle in e["request"] and status in (None, e["status"])]:
            return found
        time.sleep(0.1)
    return []


def test_the_chart_defaults_are_what_this_test_holds_the_guard_to(registry):
    _, guard = registry
    conf = guard.config
    for line in (
        f"client_header_timeout {HEADER_TIMEOUT_S}s;", f"keepalive_timeout {KEEPALIVE_TIMEOUT_S}s;",
        f"limit_conn per_client {PER_CLIENT};", f"client_max_body_size {MAX_BODY // 1024}k;",
        "client_body_timeout 10s;", "send_timeout 30s;", "limit_conn all_clients 256;",
        "worker_connections 1024;", "access_log /dev/stdout readonly;", "log_format readonly escape=json",
    ):  # fmt: skip
        assert line in conf, line


def test_storage_initializer_fetches_and_verifies_through_the_guard(registry, tmp_path):
    _, guard = registry
    dest = tmp_path / "mnt-models"
    dest.mkdir()
    result = run_fetch(guard.url, f"models:/{NAME}@champion", dest)
    assert result.returncode == 0, result.stderr
    assert "version 1" in result.stdout and "sha256 verified: model.onnx" in result.stdout
    assert sorted(p.name for p in dest.iterdir()) == ["metadata.json", "model.onnx"]
    (alias,) = logged(guard, "GET /api/2.0/mlflow/registered-models/alias?", 200)[:1]
    assert alias["status"] == 200 and alias["upstream_status"] == "200"


def test_predictor_loads_the_champion_through_the_guard(registry, tmp_path):
    _, guard = registry
    predictor = Predictor(
        tmp_path, "tiny", f"models:/{NAME}@champion", "--tracking-uri", guard.url,
        "--reload-interval-s", "0", env={"FORECASTER_PREDICTOR_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    try:
        predictor.wait_ready(timeout=90)
        closes = windows(rows=2, window=WINDOW)
        answer = predictor.infer(closes)
        assert answer.status_code == 200, answer.text
        forecast = next(o for o in answer.json()["outputs"] if o["name"] == "forecast")
        assert np.allclose(forecast["data"], expected_forecast(closes), rtol=1e-5)
    finally:
        predictor.stop()


def test_monitor_resolves_and_loads_the_champion_through_the_guard(registry, tmp_path):
    from monitor.__main__ import Monitor
    from monitor.settings import MonitorSettings

    _, guard = registry
    monitor = Monitor(MonitorSettings(
        model_source=f"models:/{NAME}@champion", tracking_uri=guard.url, model_name=NAME, source="csv",
        csv=tmp_path / "unused.csv",
    ))  # fmt: skip
    version, forecaster = monitor.forecaster()
    assert version == "1"
    assert monitor.source.resolve().version == "1"
    assert logged(guard, "GET /api/2.0/mlflow-artifacts/artifacts/")  # the bundle came through it
    assert type(forecaster).__name__ == "OnnxForecaster"


def test_searches_pass_including_the_read_only_posts(registry):
    from mlflow import MlflowClient

    server, guard = registry
    reader = MlflowClient(guard.url, guard.url)
    experiment = reader.get_experiment_by_name("fetch")
    assert {e.name for e in reader.search_experiments()} == {"fetch", "Default"}  # POST experiments/search
    assert len(reader.search_runs([experiment.experiment_id])) == 2  # POST runs/search
    logged = reader.search_logged_models([experiment.experiment_id])  # POST logged-models/search
    direct = MlflowClient(server.url, server.url).search_logged_models([experiment.experiment_id])
    assert len(logged) == 2 and sorted(m.model_id for m in logged) == sorted(m.model_id for m in direct)
    assert {v.version for v in reader.search_model_versions(f"name='{NAME}'")} == {"1", "2"}  # GET
    assert [m.name for m in reader.search_registered_models()] == [NAME]  # GET
    for path in ("runs/search", "experiments/search", "logged-models/search"):  # the UI's twins
        body = {"experiment_ids": [experiment.experiment_id], "max_results": 10}
        answer = requests.post(f"{guard.url}/ajax-api/2.0/mlflow/{path}", json=body, timeout=10)
        direct = requests.post(f"{server.url}/ajax-api/2.0/mlflow/{path}", json=body, timeout=10)
        assert answer.status_code == direct.status_code == 200, (path, answer.text)
        assert answer.json().keys() == direct.json().keys()


def test_mlflow_client_cannot_write_through_the_guard_but_training_can(registry):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    server, guard = registry
    reader = MlflowClient(guard.url, guard.url)
    assert reader.get_model_version_by_alias(NAME, "champion").version == "1"  # reads do pass
    writes = {
        "move the champion alias": lambda: reader.set_registered_model_alias(NAME, "champion", "2"),
        "delete the champion alias": lambda: reader.delete_registered_model_alias(NAME, "champion"),
        "create a registered model": lambda: reader.create_registered_model("intruder-forecaster"),
        "register a version": lambda: reader.create_model_version(NAME, source="runs:/x/bundle"),
        "delete a model version": lambda: reader.delete_model_version(NAME, "1"),
        "delete the registered model": lambda: reader.delete_registered_model(NAME),
        "tag a version": lambda: reader.set_model_version_tag(NAME, "1", "gate", "forged"),
        "create an experiment": lambda: reader.create_experiment("intruder"),
        "create a run": lambda: reader.create_run(reader.get_experiment_by_name("fetch").experiment_id),
        "create a logged model": lambda: reader.create_logged_model("0"),
    }
    for what, write in writes.items():
        with pytest.raises(MlflowException) as refused:
            write()
        assert "405" in str(refused.value) or "not allowed" in str(refused.value), (what, refused.value)
    truth = MlflowClient(server.url, server.url)
    assert truth.get_model_version_by_alias(NAME, "champion").version == "1"
    assert [m.name for m in truth.search_registered_models()] == [NAME]
    assert sorted(v.version for v in truth.search_model_versions(f"name='{NAME}'")) == ["1", "2"]
    assert truth.get_model_version(NAME, "1").tags.get("gate") is None
    assert truth.get_experiment_by_name("intruder") is None
    refused = logged(guard, "", 405)
    assert refused and all(e["upstream_status"] == "" for e in guard.access_log() if e["status"] == 405)
    # The training-only port writes (the chart admits only training pods to it).
    truth.set_registered_model_alias(NAME, "challenger", "2")
    assert reader.get_model_version_by_alias(NAME, "challenger").version == "2"
    truth.delete_registered_model_alias(NAME, "challenger")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/2.0/mlflow/registered-models/alias"),
        ("PUT", "/api/2.0/mlflow-artifacts/artifacts/1/x/artifacts/model.onnx"),
        ("PATCH", "/api/2.0/mlflow/model-versions/update"),
        ("DELETE", "/api/2.0/mlflow/registered-models/alias"),
        ("OPTIONS", "/api/2.0/mlflow/registered-models/alias"),
        ("PROPFIND", "/"),
        ("PUT", "/api/2.0/mlflow/runs/search"),  # a search path takes POST, nothing else
        # POST paths that only look like a search: the raw target must be one, verbatim
        ("POST", "/api/2.0/mlflow/runs/search/../../registered-models/alias"),
        ("POST", "/api/2.0/mlflow/runs/%73earch"),
        ("POST", "//api/2.0/mlflow/runs/search"),
        ("POST", "/api/2.0/mlflow/registered-models/alias?next=/api/2.0/mlflow/runs/search"),
        ("POST", "/api/2.0/mlflow/runs/search-extra"),
        ("POST", "/graphql"),
    ],
)
def test_every_other_method_or_post_path_is_refused_without_reaching_mlflow(registry, method, path):
    server, guard = registry
    conn = socket.create_connection(("127.0.0.1", guard.port), timeout=10)
    body = b'{"name": "tiny-forecaster", "alias": "champion", "version": "2"}'
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    conn.sendall(head.encode() + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    answer = b""
    while chunk := conn.recv(65536):
        answer += chunk
    conn.close()
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"405", answer
    assert b"\r\nAllow: GET, HEAD\r\n" in rest
    assert f"{method} is not allowed here: MLflow read-only port".encode() in rest
    (entry,) = logged(guard, f"{method} {path} ", 405)[:1]
    assert entry["upstream_status"] == ""  # answered by nginx, MLflow never saw it
    from mlflow import MlflowClient

    assert MlflowClient(server.url, server.url).get_model_version_by_alias(NAME, "champion").version == "1"


def test_head_query_status_and_absolute_form(registry):
    server, guard = registry
    path = "/api/2.0/mlflow/registered-models/alias"
    missing = requests.get(guard.url + path, params={"name": NAME, "alias": "nope"}, timeout=10)
    direct = requests.get(server.url + path, params={"name": NAME, "alias": "nope"}, timeout=10)
    assert missing.status_code == direct.status_code and 400 <= missing.status_code < 500
    assert missing.json() == direct.json()
    head = requests.head(guard.url + "/health", timeout=10)
    assert head.status_code == 200 and head.content == b""
    body = requests.get(guard.url + "/health", timeout=10)
    assert body.status_code == 200 and body.text.strip() == "OK"
    # Not a forward proxy: an absolute-form target is MLflow's own path, the named host never reached.
    with socket.create_connection(("127.0.0.1", guard.port), timeout=10) as conn:
        conn.sendall(
            b"GET http://example.org/health HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n"
        )
        answer = conn.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200") and answer.rstrip().endswith(b"OK")


def test_a_control_byte_in_the_path_is_a_400_logged_escaped(registry):
    _, guard = registry
    with socket.create_connection(("127.0.0.1", guard.port), timeout=10) as conn:
        conn.sendall(
            b"GET /api/2.0/mlflow/registered-models/get?name=a\x01b\x1b[2J HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        answer = conn.recv(65536)
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    (entry,) = logged(guard, "name=a\u0001b", 400)[:1]  # parsed back from its escaped JSON form
    assert entry["status"] == 400 and entry["upstream_status"] == ""
    raw = guard.log.read_bytes()
    assert b"\x01" not in raw and b"\x1b" not in raw  # the log holds \u0001 and \u001b, never the bytes
    assert b"name=a\\u0001b\\u001B[2J" in raw or b"name=a\\u0001b\\u001b[2J" in raw


def test_a_body_over_the_limit_is_a_413_without_reaching_mlflow(registry):
    """Refused on its declared length, before a byte of it is read (a client still sending a body
    nginx has refused may see its connection reset instead of the answer: not tested here)."""
    _, guard = registry
    with socket.create_connection(("127.0.0.1", guard.port), timeout=10) as conn:
        head = b"POST /api/2.0/mlflow/runs/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        conn.sendall(head + b"Content-Length: %d\r\n\r\n" % (MAX_BODY + 1))
        answer = conn.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    (entry,) = logged(guard, "POST /api/2.0/mlflow/runs/search ", 413)[:1]
    assert entry["upstream_status"] == ""
    at_limit = requests.post(
        f"{guard.url}/api/2.0/mlflow/runs/search", timeout=10,
        json={"experiment_ids": ["0"], "max_results": 1, "filter": " " * (MAX_BODY - 100)},
    )  # fmt: skip
    assert at_limit.status_code != 413  # up to the limit, the body reaches MLflow


def test_slow_silent_and_idle_clients_are_closed_within_the_bound(registry):
    """Silent (nothing sent), slow (a header byte every 2 s: the bound is on the whole header, not
    between bytes) and idle kept-alive connections are all closed by nginx within their timeout
    (+2 s); meanwhile a well-formed request is answered at once."""
    _, guard = registry
    closed_after: dict[str, float] = {}

    def wait_closed(kind: str, sock: socket.socket, started: float, trickle: bytes = b"") -> None:
        try:
            while True:
                if trickle:
                    sock.sendall(trickle)
                    time.sleep(2)
                    continue
                if not sock.recv(65536):
                    break
        except OSError:
            pass
        closed_after[kind] = time.monotonic() - started
        sock.close()

    def open_(first: bytes = b"") -> tuple[socket.socket, float]:
        sock = socket.create_connection(("127.0.0.1", guard.port), timeout=HEADER_TIMEOUT_S * 3)
        sock.sendall(first)
        return sock, time.monotonic()

    silent = open_()
    slow = open_(b"GET /health HTTP/1.1\r\n")
    idle, _ = open_(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert idle.recv(65536).startswith(b"HTTP/1.1 200")  # answered, then kept alive, then idle
    idle_started = time.monotonic()
    threads = [
        threading.Thread(target=wait_closed, args=("silent", *silent)),
        threading.Thread(target=wait_closed, args=("slow", *slow, b"X")),
        threading.Thread(target=wait_closed, args=("idle", idle, idle_started)),
    ]
    for t in threads:
        t.start()
    good = time.monotonic()
    assert requests.get(guard.url + "/health", timeout=5).status_code == 200
    assert time.monotonic() - good < 2
    for t in threads:
        t.join(HEADER_TIMEOUT_S * 3)
    assert set(closed_after) == {"silent", "slow", "idle"}, closed_after
    assert HEADER_TIMEOUT_S - 1 < closed_after["silent"] < HEADER_TIMEOUT_S + 2, closed_after
    assert HEADER_TIMEOUT_S - 1 < closed_after["slow"] < HEADER_TIMEOUT_S + 2 + 2, closed_after
    assert KEEPALIVE_TIMEOUT_S - 1 < closed_after["idle"] < KEEPALIVE_TIMEOUT_S + 2, closed_after
    assert logged(guard, "GET /health", 408)  # the slow one, logged as a timeout


def test_too_many_requests_from_one_client_are_a_503_then_served_again(registry):
    """PER_CLIENT requests in progress (search POSTs waiting for their body) hold the client's
    share; the next is a 503 at once, and once they go, requests pass again."""
    _, guard = registry
    held = []
    try:
        for _ in range(PER_CLIENT):
            sock = socket.create_connection(("127.0.0.1", guard.port), timeout=10)
            sock.sendall(b"POST /api/2.0/mlflow/runs/search HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")  # fmt: skip
            held.append(sock)
        wait_for(lambda: requests.get(guard.url + "/health", timeout=5).status_code == 503, 10, "503")
        refused = requests.get(guard.url + "/health", timeout=5)
        assert refused.status_code == 503 and "too many requests" in refused.json()["error"]
    finally:
        for sock in held:
            sock.close()
    wait_for(lambda: requests.get(guard.url + "/health", timeout=5).status_code == 200, 10, "served again")


def test_unreachable_mlflow_is_a_502_naming_it(tmp_path):
    dead = f"127.0.0.1:{free_port()}"
    guard = ReadOnlyGuard(tmp_path, dead).wait_up()
    try:
        answer = requests.get(guard.url + "/api/2.0/mlflow/registered-models/get?name=x", timeout=10)
        assert answer.status_code == 502
        assert dead in answer.json()["error"] and "unreachable" in answer.json()["error"]
        write = requests.post(guard.url + "/api/2.0/mlflow/registered-models/create", json={}, timeout=10)
        assert write.status_code == 405
    finally:
        guard.stop()
