"""Every bad input gets a 4xx that names the problem; nothing bad reaches the model or gives a 500."""

from __future__ import annotations

import json
import re
import socket

import pytest

from tests.integration.servers import timeseries_body

pytestmark = pytest.mark.slow


def tensor(data, shape=None, name="closes", datatype="FP64"):
    shape = shape if shape is not None else [1, len(data)]
    return {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]}


# Every rule is tested in-process (tests/unit/predictor); these few prove the HTTP mapping: a 400
# carrying the message, counted under its reason label.
CASES = {
    "unknown input name": (lambda w: tensor(w, name="prices"), "unknown input 'prices'", "input_name"),
    "wrong window": (lambda w: tensor(w[:30]), "window length is 30; this model needs 60", "window"),
    "non-positive": (
        lambda w: tensor([*w[:59], 0.0]),
        "closes[0][59] is 0.0: prices must be > 0",
        "non_positive",
    ),
    "batch over limit": (
        lambda w: tensor(w * 257, shape=[257, 60]),
        "batch of 257 is over the limit of 256",
        "batch",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_v2_input_is_a_400_naming_the_problem(served, windows, case):
    build, message, reason = CASES[case]
    before = served.metric("forecaster_rejected_requests_total", reason=reason)
    response = served.post("/v2/models/aapl/infer", json=build(windows[0].tolist()))
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]
    assert served.metric("forecaster_rejected_requests_total", reason=reason) == before + 1


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_inf_are_refused_not_answered(served, windows, literal):
    values = ", ".join(map(str, windows[0][:59]))
    tensor_json = f'{{"name": "closes", "shape": [1, 60], "datatype": "FP64", "data": [{values}, {literal}]}}'
    body = f'{{"inputs": [{tensor_json}]}}'
    response = served.post("/v2/models/aapl/infer", data=body, headers={"content-type": "application/json"})
    assert response.status_code == 400 and "prices must be finite" in response.json()["error"]


def test_bad_v1_input_is_a_400(served):
    response = served.post("/v1/models/aapl:predict", json={"instances": [[1.0] * 59]})
    assert response.status_code == 400
    assert "instance 0 has 59 closes; this model needs 60" in response.json()["error"]


def test_malformed_json_is_a_4xx_naming_it(served):
    response = served.post(
        "/v2/models/aapl/infer", data=b'{"inputs": [', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and "JSON decode error" in response.json()["error"]
    response = served.post(
        "/v2/models/aapl/infer", data=b"plain text", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 400


def test_bad_timeseries_options_are_400(served, windows):
    body = timeseries_body("aapl", windows[0].tolist(), horizon=21)
    response = served.post("/v1/timeseries/forecast", json=body)
    error = response.json()["error"]  # KServe's time-series error model
    assert response.status_code == 400 and "horizon 21 is outside 1..20" in error["message"]


def test_short_timeseries_is_400(served):
    response = served.post("/v1/timeseries/forecast", json=timeseries_body("aapl", [1.0] * 10))
    assert response.status_code == 400 and "has 10 values; this model needs at least 60" in response.text


def raw_request(port: int, head: bytes, body: bytes = b"") -> bytes:
    """Send raw bytes; read the whole response (headers and body may arrive in separate segments)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head + body)
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += conn.recv(65536)
        headers, _, rest = reply.partition(b"\r\n\r\n")
        length = int(re.search(rb"content-length: (\d+)", headers, re.I).group(1))
        while len(rest) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            rest += chunk
        return headers + b"\r\n\r\n" + rest


def test_oversized_body_is_refused_from_its_header_before_it_is_read(served):
    head = (b"POST /v2/models/aapl/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50000000\r\n\r\n")  # fmt: skip
    reply = raw_request(served.http, head)  # no body sent at all: the answer comes anyway
    assert reply.startswith(b"HTTP/1.1 413") and b"over the limit of 1048576 bytes" in reply


def test_oversized_chunked_body_is_refused(served):
    chunk = b"x" * 600_000
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)) + b"0\r\n\r\n"
    head = (b"POST /v2/models/aapl/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
    assert raw_request(served.http, head, body).startswith(b"HTTP/1.1 413")


def test_json_without_a_json_content_type_is_still_json(served, windows):
    """curl -d sends a form type (the README's v1 example); tritonclient with binary_data=False none."""
    v1 = served.post("/v1/models/aapl:predict", data=json.dumps({"instances": [windows[0].tolist()]}),
                     headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert v1.status_code == 200 and "forecast" in v1.json()["predictions"][0]
    v2 = served.post("/v2/models/aapl/infer", data=json.dumps(tensor(windows[0].tolist())).encode())
    assert v2.status_code == 200, v2.text


def test_malformed_binary_extension_is_a_400(served, windows):
    header = json.dumps({"inputs": [{"name": "closes", "shape": [1, 60], "datatype": "FP64",
                                     "parameters": {"binary_data_size": -8}}]}).encode()  # fmt: skip
    body = header + windows[0].astype("float64").tobytes()
    for declared in (str(len(header)), "abc"):
        response = served.post("/v2/models/aapl/infer", data=body,
                               headers={"inference-header-content-length": declared})  # fmt: skip
        assert response.status_code == 400, response.text


def test_an_integer_literal_beyond_float64_is_a_4xx(served, windows):
    values = ", ".join(map(str, windows[0][:59]))
    huge = "1" + "0" * 400  # a JSON integer literal, 1e400 written out
    tensor_json = f'{{"name": "closes", "shape": [1, 60], "datatype": "FP64", "data": [{values}, {huge}]}}'
    body = f'{{"inputs": [{tensor_json}]}}'
    response = served.post("/v2/models/aapl/infer", data=body, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500, response.text


def test_explain_and_versioned_infer_are_refused_before_the_body_is_read(served):
    for path, answer in ((b"/v1/models/aapl:explain", b"HTTP/1.1 404"), (b"/v2/models/aapl/versions/1/infer",
                                                                         b"HTTP/1.1 413")):  # fmt: skip
        head = (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 69000000\r\n\r\n")  # fmt: skip
        reply = raw_request(served.http, head)  # no body sent: the answer comes anyway
        assert reply.startswith(answer), reply[:200]


def test_the_served_version_is_addressable_and_no_other(served, windows):
    version = served.get("/v2/models/aapl").json()["versions"][0]
    answer = served.post(f"/v2/models/aapl/versions/{version}/infer", json=tensor(windows[0].tolist()))
    assert answer.status_code == 200 and answer.json()["model_version"] == version
    response = served.get("/v2/models/aapl/versions/1")
    assert response.status_code == 404 and f"it serves version {version!r}" in response.json()["error"]


@pytest.mark.parametrize("action", ["load", "unload"])
def test_repository_load_and_unload_are_refused(served, windows, action):
    response = served.post(f"/v2/repository/models/aapl/{action}", json={})
    assert response.status_code == 403 and "disabled" in response.json()["error"]
    assert served.infer(windows[:1]).status_code == 200  # still serving


def test_no_bad_input_produced_a_500(served):
    """After every test above, the server's own counter shows no 5xx on any route."""
    text = served.get("/metrics").text
    assert 'code="500"' not in text, json.dumps([line for line in text.splitlines() if 'code="5' in line])


def test_rejections_leave_no_traceback_and_no_line_when_quiet(served, windows):
    """kserve logs a ~2 KB traceback per rejected request; here: nothing with --quiet (the default)."""
    assert served.post("/v2/models/aapl/infer", json=tensor(windows[0][:30].tolist())).status_code == 400
    assert served.post("/v2/models/nope/infer", json=tensor(windows[0].tolist())).status_code == 404
    log = served.output()
    assert "Traceback" not in log and "rejected:" not in log
