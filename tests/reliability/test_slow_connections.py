"""Slow and idle connections (issue 14): hundreds of incomplete requests on loopback neither starve a
well-formed client nor outlive the request deadline; past --max-connections, requests get a 503."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests

from tests.integration.servers import Predictor
from tests.reliability.conftest import size
from tests.tiny_bundle import WINDOW, windows, write_tiny_bundle

pytestmark = pytest.mark.slow
DEADLINE_S = 2.0
BODY = json.dumps(
    {"inputs": [{"name": "closes", "shape": [1, WINDOW], "datatype": "FP64", "data": windows(1)[0].tolist()}]}
).encode()


@pytest.fixture
def tiny(tmp_path):
    write_tiny_bundle(tmp_path / "bundle")
    return str(tmp_path / "bundle")


def incomplete(port: int, kind: str) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    head = b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    if kind == "partial headers":
        conn.sendall(head)
    elif kind == "partial body":
        conn.sendall(head + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY[:10])
    elif kind == "unfinished chunks":
        conn.sendall(head + b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"inp')
    return conn  # "idle": connected, nothing sent


def closed_by_server(conn: socket.socket) -> bool:
    conn.settimeout(0.2)
    try:
        return conn.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_incomplete_connections_do_not_starve_clients_and_are_closed_by_the_deadline(tmp_path, tiny):
    server = Predictor(tmp_path, "m", tiny, "--request-timeout-s", str(DEADLINE_S))
    per_kind = size(75, 240)  # 960 at full size: under the default --max-connections (1000)
    sockets = []
    try:
        server.wait_ready()
        for kind in ("idle", "partial headers", "partial body", "unfinished chunks"):
            sockets += [incomplete(server.http, kind) for _ in range(per_kind)]
        start = time.monotonic()
        answer = requests.post(f"{server.url}/v2/models/m/infer", data=BODY, timeout=5,
                               headers={"content-type": "application/json"})  # fmt: skip
        assert answer.status_code == 200 and time.monotonic() - start < 1.0
        time.sleep(DEADLINE_S + 1.5)
        still_open = [s for s in sockets if not closed_by_server(s)]
        assert not still_open, (
            f"{len(still_open)} of {len(sockets)} incomplete connections outlived the deadline"
        )
        assert server.metric("forecaster_rejected_requests_total", reason="request_timeout") >= len(sockets)
        # A slow but complete request is served: the deadline covers arrival, not the model's time.
        assert requests.post(f"{server.url}/v2/models/m/infer", data=BODY, timeout=5).status_code == 200
    finally:
        for s in sockets:
            s.close()
        server.stop()


def test_past_max_connections_requests_get_a_503(tmp_path, tiny):
    server = Predictor(tmp_path, "m", tiny, "--max-connections", "4", "--request-timeout-s", "30")
    sockets = []
    try:
        server.wait_ready()
        sockets = [incomplete(server.http, "idle") for _ in range(6)]
        time.sleep(0.3)
        answer = requests.post(f"{server.url}/v2/models/m/infer", data=BODY, timeout=5)
        assert answer.status_code == 503
    finally:
        for s in sockets:
            s.close()
        server.stop()
    assert "Traceback" not in server.output()
