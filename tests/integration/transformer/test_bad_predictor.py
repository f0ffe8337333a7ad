"""The real transformer (`python -m transformer`, fast path on and off) in front of a misbehaving
predictor: a real HTTP server on loopback whose answers the test picks. A broken or unusable answer
is a 502 naming what was wrong, bounded, logged as one line and never with a traceback; no answer in
time is a 503 naming the bound (--predictor_request_timeout_seconds), whatever the predictor does
after sending its headers; the transformer stays up."""

from __future__ import annotations

import socketserver
import threading
import time

import orjson
import pytest

from tests.integration.servers import Transformer
from tests.integration.transformer.test_one_call import write_b3_csv

pytestmark = pytest.mark.slow
NAME, WINDOW = "petr4", 8
JSON = "content-type: application/json\r\n"


def ok(body: bytes, headers: str = JSON) -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {len(body)}\r\n{headers}\r\n".encode()
        + body
    )


def outputs(*tensors: dict) -> bytes:
    return ok(orjson.dumps({"model_name": NAME, "model_version": "3", "id": "x", "outputs": list(tensors)}))


def tensor(name: str, data: list, datatype: str = "FP64") -> dict:
    return {"name": name, "datatype": datatype, "shape": [len(data)], "data": data}


METADATA = ok(orjson.dumps({"name": NAME, "versions": ["3"], "platform": "onnxruntime_onnx",
                            "inputs": [{"name": "closes", "datatype": "FP64", "shape": [-1, WINDOW]}],
                            "outputs": [{"name": "forecast", "shape": [-1]}]}))  # fmt: skip
GOOD = outputs(tensor("forecast", [37.5]), tensor("lower_80", [36.0]), tensor("upper_80", [39.0]))
STALL = object()  # headers promising a body, then nothing for 5 s


class MisbehavingPredictor(socketserver.ThreadingTCPServer):
    """Answers `GET /v2/models/<m>` with `metadata` and `POST .../infer` with `infer`, as raw bytes."""

    daemon_threads = allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.metadata, self.infer = METADATA, GOOD
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()


class Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = self.rfile.readline()
            if not line:
                return
            head += line
        lines = head.lower().split(b"\r\n")
        length = next((int(x.split(b":")[1]) for x in lines if x.startswith(b"content-length:")), 0)
        self.rfile.read(length)
        answer = self.server.metadata if head.startswith(b"GET") else self.server.infer
        if answer is STALL:
            self.wfile.write(f"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n{JSON}\r\n".encode() + b'{"outputs"')
            self.wfile.flush()
            time.sleep(5)
            return
        self.wfile.write(answer)


@pytest.fixture(scope="module", params=["fast-path", "kserve-route"])
def stack(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad-predictor")
    write_b3_csv(tmp / "closes.csv")
    predictor = MisbehavingPredictor()
    route = ["--no-fast-path"] if request.param == "kserve-route" else []
    transformer = Transformer(tmp, NAME, predictor.port, "--source", "csv", "--csv", str(tmp / "closes.csv"),
                              "--metadata-ttl-s", "0", "--predictor_request_timeout_seconds", "1",
                              *route)  # fmt: skip
    try:
        transformer.wait_ready()
        yield predictor, transformer
    finally:
        transformer.stop()
        predictor.shutdown()
        predictor.server_close()
    assert "Traceback" not in transformer.output(), transformer.output()[-3000:]


ONE_CALL = {"instances": [{"as_of": "2024-06-03"}]}
RELAY = {"instances": [[36.0 + 0.1 * i for i in range(WINDOW)]]}
HTML = b"<html><body>\x1b[31m" + b"maintenance " * 1000 + b"</body></html>"


def one_call(transformer, body=ONE_CALL):
    return transformer.post(f"/v1/models/{NAME}:predict", json=body)


def refused_once(transformer, body, status: int, says: str) -> float:
    """The call is answered `status` naming `says` in one bounded line, and adds exactly one log
    line, that one; the seconds it took."""
    logged = len(transformer.output())
    started = time.monotonic()
    response = one_call(transformer, body)
    took = time.monotonic() - started
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert says in message, message
    assert "\n" not in message and "\x1b" not in message and len(message) < 400
    deadline, lines = time.monotonic() + 5, []
    while not lines and time.monotonic() < deadline:
        lines = transformer.output()[logged:].splitlines()
        time.sleep(0.1)
    assert len(lines) == 1 and f"refused ({status}): {message}" in lines[0], lines
    return took


def test_a_good_answer_is_served(stack):
    predictor, transformer = stack
    predictor.metadata, predictor.infer = METADATA, GOOD
    (row,) = one_call(transformer).json()["predictions"]
    assert (row["forecast"], row["upper_80"], row["model_version"]) == (37.5, 39.0, "3")


TRUNCATED = f"HTTP/1.1 200 OK\r\ncontent-length: 500\r\n{JSON}\r\n".encode() + b'{"outputs": [{"name"'
INFER_CASES = {
    "status-line": (b"HTTP/1.1 2x0 OK\r\ncontent-length: 2\r\n\r\n{}", "Invalid status code"),
    "length": (b"HTTP/1.1 200 OK\r\ncontent-length: 1x\r\n\r\n{}", "Invalid character in Content-Length"),
    "truncated": (TRUNCATED, "the answer was cut short"),
    "content-type": (ok(b"<html>hi</html>", "content-type: text/html\r\n"), "content type is 'text/html'"),
    "not-json": (ok(HTML), "not JSON"),
    "no-outputs": (ok(b'{"model_name": "petr4", "outputs": []}'), "it holds no outputs"),
    "no-forecast": (outputs(tensor("upper_80", [39.0])), "it has no 'forecast' output (it has ['upper_80'])"),
    "non-numeric": (outputs(tensor("forecast", ["37.5"], "BYTES")), "holds '37.5', not a number"),
    "non-finite": (outputs(tensor("forecast", ["Infinity"])), "holds 'Infinity', not a number"),
    "empty": (outputs(tensor("forecast", [])), "output 'forecast' holds no data"),
    "server-error": (HTML.join([b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: "
                                + str(len(HTML)).encode() + b"\r\n\r\n", b""]), "the predictor answered 500"),
}  # fmt: skip


@pytest.mark.parametrize("case", INFER_CASES)
def test_an_unusable_forecast_answer_is_a_502_naming_it(stack, case):
    predictor, transformer = stack
    predictor.metadata, (predictor.infer, says) = METADATA, INFER_CASES[case]
    refused_once(transformer, ONE_CALL, 502, says)


METADATA_CASES = {
    "status-line": (b"HTTP/1.1 OK\r\n\r\n", "Bad status line"),
    "truncated": (TRUNCATED, "Payload"),
    "content-type": (ok(b"<html>hi</html>", "content-type: text/html\r\n"), "content type is 'text/html'"),
    "no-window": (ok(b'{"inputs": []}'), "its metadata names no input window"),
}


@pytest.mark.parametrize("case", METADATA_CASES)
def test_unusable_model_metadata_is_a_502_naming_it(stack, case):
    predictor, transformer = stack
    (predictor.metadata, says), predictor.infer = METADATA_CASES[case], GOOD
    refused_once(transformer, ONE_CALL, 502, says)


RELAY_CASES = {
    "non-numeric": (outputs(tensor("forecast", ["abc"])), "output 'forecast': could not convert"),
    "no-outputs": (ok(b'{"model_name": "petr4", "outputs": []}'), "it holds no outputs"),
    "rows": (outputs(tensor("forecast", [1.0]), tensor("upper_80", [1.0, 2.0])), "has 2 rows, the first 1"),
    "status-line": (b"HTTP/1.1 OK\r\n\r\n", "Bad status line"),
}


@pytest.mark.parametrize("case", RELAY_CASES)
def test_an_unusable_answer_to_a_relayed_call_is_a_502_naming_it(stack, case):
    predictor, transformer = stack
    predictor.metadata, (predictor.infer, says) = METADATA, RELAY_CASES[case]
    refused_once(transformer, RELAY, 502, says)


@pytest.mark.parametrize("stalled", ["infer", "metadata"])
def test_a_predictor_that_sends_headers_and_stalls_is_a_503_within_the_bound(stack, stalled):
    predictor, transformer = stack
    predictor.metadata, predictor.infer = METADATA, GOOD
    setattr(predictor, stalled, STALL)
    bound = "did not answer within 1 s (--predictor_request_timeout_seconds)"
    assert 0.9 < refused_once(transformer, ONE_CALL, 503, bound) < 3.0  # not the 5 s it stalls
    predictor.metadata, predictor.infer = METADATA, GOOD  # and it recovers at once
    assert one_call(transformer).status_code == 200
    assert transformer.get("/v2/health/live").status_code == 200
