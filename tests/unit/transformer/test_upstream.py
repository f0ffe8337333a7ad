"""The transformer's calls to the predictor (transformer/upstream.py) under their retry policy, against
a real asyncio server on loopback whose answers are scripted, on the lean client (the one call's
inference), on aiohttp (the metadata) and on aiohttp's relays:
- no answer (refused, closed before a byte) is the transport's: retried `retries` times, then a 503
  naming the predictor; a kept-alive connection the predictor closed while idle costs no retry;
- no answer in time is a 503 naming the bound, never retried, and the bound covers every attempt of
  a call and an answer whose head came but whose body stalls;
- a broken or unusable answer is the predictor's: a 502 naming what was wrong, in one bounded line,
  never retried."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import orjson
import pytest
from kserve.protocol.infer_type import InferInput, InferRequest

from tests.unit.transformer.test_wire import Scripted
from transformer.upstream import BadAnswerError, PredictorClient, UpstreamError, excerpt

JSON = "content-type: application/json\r\n"
DROPPED = (b"", True)  # the connection closed without an answer


def ok(body: bytes, headers: str = JSON) -> bytes:
    return f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n{headers}\r\n".encode() + body


def answer_of(*outputs: dict) -> bytes:
    return ok(orjson.dumps({"model_version": "7", "outputs": list(outputs)}))


ANSWER = answer_of({"name": "forecast", "data": [1.5]}, {"name": "upper_80", "data": [1.75]})
METADATA = ok(orjson.dumps({"versions": ["7"], "inputs": [{"name": "closes", "shape": [-1, 60]}]}))
CLOSES = np.linspace(30.0, 31.0, 60)
# (call, its answer, what it returns, connections one attempt may take: aiohttp itself sends an
# idempotent GET once more on a connection closed without an answer, RFC 9112 9.3.1)
CALLS = {
    "forecast": ("forecast", ANSWER, ({"forecast": 1.5, "upper_80": 1.75}, "7", {}), 1),  # the lean client
    "window": ("window", METADATA, (60, "7"), 2),  # aiohttp
}


def relay_request() -> InferRequest:
    closes = InferInput("closes", [1, 60], "FP64", [CLOSES.tolist()])
    return InferRequest(model_name="m", infer_inputs=[closes], request_id="r")


def ask(client: PredictorClient, call: str):
    if call == "forecast":
        return client.forecast(CLOSES, {})
    if call == "relay":
        return client.infer(relay_request(), {}, relayed=True)
    return client.window()


def calls(script, call: str, retries: int, pause_s: float = 0.0, timeout_s: float = 2.0):
    """Each call's result (or the UpstreamError it raised), and the connections the predictor saw."""

    async def scenario():
        state = Scripted(script)
        server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        client = PredictorClient(url, "m", None, timeout_s, retries, ttl_s=0)
        results = []
        async with server:
            for _ in range(2 if pause_s else 1):
                try:
                    results.append(await ask(client, call))
                except UpstreamError as exc:
                    results.append(exc)
                await asyncio.sleep(pause_s)
            if client._session is not None:
                await client._session.close()
        return results, state.connections

    return asyncio.run(scenario())


@pytest.mark.parametrize("name", CALLS)
def test_transport_failures_are_retried_retries_times(name):
    call, answer, expected, per_attempt = CALLS[name]
    (result,), connections = calls([DROPPED] * 2 * per_attempt + [(answer, False)], call, retries=2)
    assert result == expected and connections == 2 * per_attempt + 1


@pytest.mark.parametrize("name", CALLS)
def test_past_the_retries_a_transport_failure_is_a_503_naming_the_predictor(name):
    call, answer, _, per_attempt = CALLS[name]
    (result,), connections = calls([DROPPED] * 2 * per_attempt + [(answer, False)], call, retries=1)
    assert isinstance(result, UpstreamError) and result.status == 503
    assert "the predictor at http://127.0.0.1:" in str(result) and "unreachable" in str(result)
    assert connections == 2 * per_attempt


@pytest.mark.parametrize("call", ["forecast", "window"])
def test_a_malformed_answer_is_a_502_and_never_retried(call):
    (result,), connections = calls([(b"garbage\r\n\r\n", True), (ANSWER, False)], call, retries=3)
    assert isinstance(result, BadAnswerError) and result.status == 502
    assert "the predictor's answer is unusable" in str(result) and connections == 1


BODY = b'{"model_version": "7", "outputs": [{"name": "forecast", "data": [1.5]}]}'
# Each case: (what the predictor sends, words the 502 must hold). The same for the one call's
# inference (lean client) and for the metadata (aiohttp) where the case applies to both.
BROKEN = {
    "status-line": (b"HTTP/1.1 2x0 OK\r\ncontent-length: 2\r\n\r\n{}", "Invalid status code"),
    "no-status": (b"HTTP/1.1 OK\r\n\r\n", "Invalid status code"),
    "length": (b"HTTP/1.1 200 OK\r\ncontent-length: abc\r\n\r\n{}", "Invalid character in Content-Length"),
    "negative-length": (b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n{}", "Content-Length"),
    "truncated": (f"HTTP/1.1 200 OK\r\ncontent-length: 500\r\n{JSON}\r\n".encode() + BODY,
                  "cut short|Payload"),
    "html": (ok(b"<html>down for maintenance</html>", "content-type: text/html\r\n"),
             "content type is 'text/html'"),
    "no-content-type": (ok(BODY, ""), "content type is 'missing'"),
}  # fmt: skip
UNUSABLE = {
    "not-json": (ok(b"<html>\x1b[31m" + b"x" * 10_000), "not JSON"),
    "no-outputs": (ok(b'{"outputs": []}'), "it holds no outputs"),
    "outputs-not-a-list": (ok(b'{"outputs": {"forecast": 1}}'), "it holds no outputs"),
    "no-forecast": (answer_of({"name": "y", "data": [1.5]}), "it has no 'forecast' output (it has ['y'])"),
    "empty-data": (answer_of({"name": "forecast", "data": []}), "output 'forecast' holds no data"),
    "string": (answer_of({"name": "forecast", "data": ["abc"]}), "'forecast' holds 'abc', not a number"),
    "nan-string": (answer_of({"name": "forecast", "data": ["NaN"]}), "holds 'NaN', not a number"),
    "null": (answer_of({"name": "forecast", "data": [None]}), "holds None, not a number"),
    "bool": (answer_of({"name": "forecast", "data": [True]}), "holds True, not a number"),
    "huge-int": (ok(b'{"outputs": [{"name": "forecast", "data": [1000000000000000000000000000000]}, '
                    b'{"name": "upper_80", "data": [18446744073709551615]}]}'), None),
    "infinite": (ok(b'{"outputs": [{"name": "forecast", "data": [1e999]}]}'), "number is infinity"),
    "nameless": (answer_of({"data": [1.0]}), "an output has no name"),
}  # fmt: skip


def assert_one_bounded_line(error: UpstreamError) -> None:
    text = str(error)
    assert "\n" not in text and "\r" not in text and "\x1b" not in text and len(text) < 400


@pytest.mark.parametrize("case", [*BROKEN, *UNUSABLE])
def test_a_broken_or_unusable_inference_answer_is_a_502_naming_the_problem(case):
    answer, says = {**BROKEN, **UNUSABLE}[case]
    (result,), connections = calls([(answer, True), (ANSWER, False)], "forecast", retries=2)
    if says is None:  # integers are numbers: 10**30 is a (large) finite float
        assert result == ({"forecast": 1e30, "upper_80": float(2**64 - 1)}, None, {})
        return
    assert isinstance(result, BadAnswerError) and result.status == 502, result
    assert str(result).startswith("the predictor's answer is unusable: ")
    assert any(word in str(result) for word in says.split("|")), str(result)
    assert_one_bounded_line(result)
    assert connections == 1  # never retried


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_metadata_answer_is_a_502_naming_the_problem(case):
    answer, says = BROKEN[case]
    (result,), _ = calls([(answer, True), (METADATA, False)], "window", retries=0)
    assert isinstance(result, BadAnswerError) and result.status == 502, result
    assert any(w.lower() in str(result).lower() for w in [*says.split("|"), "Bad status line"]), str(result)
    assert_one_bounded_line(result)


@pytest.mark.parametrize(
    ("metadata", "says"),
    [
        (b'{"inputs": []}', "names no input window"),
        (b'{"inputs": [{"shape": [-1, "60"]}]}', "input window is '60', not a count"),
        (b'{"inputs": [{"shape": [-1, true]}]}', "input window is True, not a count"),
    ],
)
def test_metadata_without_a_usable_window_is_a_502(metadata, says):
    (result,), _ = calls([(ok(metadata), True)], "window", retries=0)
    assert isinstance(result, BadAnswerError) and says in str(result)


def relayed(*outputs: dict) -> bytes:
    return ok(orjson.dumps({"model_name": "m", "id": "r", "outputs": list(outputs)}))


def tensor(data, datatype="FP64", shape=None) -> dict:
    return {"name": "forecast", "datatype": datatype, "shape": shape or [len(data)], "data": data}


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (relayed(), "it holds no outputs"),
        (relayed(tensor([])), "holds no numbers"),
        (relayed(tensor(["abc"])), "output 'forecast': could not convert"),
        (relayed(tensor(["NaN"])), "not a finite number"),
        (relayed(tensor(["x"], "BYTES")), "holds no numbers"),
        (relayed(tensor([1.0, 2.0], shape=[3])), "output 'forecast': cannot reshape"),
        (relayed(tensor([1.0]), {**tensor([1.0, 2.0]), "name": "upper_80"}), "has 2 rows, the first 1"),
        (ok(b"{}", "content-type: text/plain\r\n"), "content type is 'text/plain'"),
        (ok(b"not json"), "not JSON (invalid literal"),
        (ok(b'{"outputs": []}'), "it lacks the field 'model_name'"),
        (ok(b'{"model_name": "m", "outputs": 3}'), "TypeError: 'int' object is not iterable"),
        (ok(b"{}", JSON + "inference-header-content-length: 9\r\n"), "content-length is '9'"),
    ],
)  # fmt: skip
def test_an_unusable_relayed_answer_is_a_502_naming_the_problem(answer, says):
    (result,), _ = calls([(answer, True)], "relay", retries=0)
    assert isinstance(result, BadAnswerError) and result.status == 502 and says in str(result), result
    assert_one_bounded_line(result)


def test_a_usable_relayed_answer_passes_with_its_version():
    answer = ok(orjson.dumps({"model_name": "m", "model_version": "7", "outputs": [tensor([1.5])]}))
    (result,), _ = calls([(answer, True)], "relay", retries=0)
    assert result.model_version == "7" and result.outputs[0].as_numpy().tolist() == [1.5]


def timed(handler, call: str, timeout_s: float, retries: int = 3):
    """(the UpstreamError, seconds it took, connections) against a server running `handler`."""

    async def scenario():
        seen = []

        async def handle(reader, writer):
            seen.append(1)
            await handler(reader, writer)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        client = PredictorClient(url, "m", None, timeout_s, retries, ttl_s=0)
        async with server:
            started = time.monotonic()
            with pytest.raises(UpstreamError) as caught:
                await ask(client, call)
            took = time.monotonic() - started
            if client._session is not None:
                await client._session.close()
            server.close()
        return caught.value, took, len(seen)

    return asyncio.run(scenario())


async def silent(reader, writer):
    await asyncio.sleep(3)
    writer.close()


async def head_then_stall(reader, writer):
    """Headers promising a body, then nothing: the stall the issue reproduced (a client hung > 45 s)."""
    await reader.readuntil(b"\r\n\r\n")
    writer.write(f"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n{JSON}\r\n".encode() + b'{"outputs"')
    await writer.drain()
    await asyncio.sleep(3)
    writer.close()


@pytest.mark.parametrize("call", ["forecast", "window", "relay"])
@pytest.mark.parametrize("handler", [silent, head_then_stall])
def test_a_stalling_predictor_is_a_503_within_the_bound_never_retried(call, handler):
    error, took, connections = timed(handler, call, timeout_s=0.4)
    assert error.status == 503 and "did not answer within 0.4 s" in str(error)
    assert "--predictor_request_timeout_seconds" in str(error)
    assert 0.35 < took < 1.0 and connections == 1


def test_the_bound_covers_every_attempt_of_a_call():
    """A predictor that drops each connection after 0.3 s: five retries would take 1.8 s; the call
    gives up at its bound, 0.8 s."""

    async def slow_drop(reader, writer):
        await asyncio.sleep(0.3)
        writer.close()

    error, took, connections = timed(slow_drop, "forecast", timeout_s=0.8, retries=5)
    assert error.status == 503 and "did not answer within 0.8 s" in str(error)
    assert took < 1.2 and connections == 3


def test_an_idle_connection_the_predictor_closed_costs_no_retry():
    results, connections = calls([(ANSWER, True), (ANSWER, False)], "forecast", retries=0, pause_s=0.05)
    assert results == [({"forecast": 1.5, "upper_80": 1.75}, "7", {})] * 2 and connections == 2


def test_excerpts_are_one_bounded_line():
    assert excerpt(b"a\r\nb\x00c") == "a\\r\\nb\\x00c"
    assert excerpt("x" * 500) == "x" * 160 + "..."
    assert excerpt(b"\xff\xfe") == "\ufffd\ufffd"


def test_the_one_calls_answer_carries_the_calibration_the_predictor_served():
    said = {"calibration": "bundle", "calibration_reason": "stale", "calibration_state_as_of": "2020-03-20"}
    body = {
        "model_version": "7",
        "parameters": {**said, "other": "x"},
        "outputs": [{"name": "forecast", "data": [1.5]}],
    }
    (result,), _ = calls([(ok(orjson.dumps(body)), False)], "forecast", retries=0)
    assert result == ({"forecast": 1.5}, "7", said)
