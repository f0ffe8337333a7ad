"""The transformer's calls to the predictor (transformer/upstream.py) under their retry policy, against
a real asyncio server on loopback whose answers are scripted: a transport failure is retried
`retries` times and then a 503 naming the predictor, a timeout is never retried, both on the lean
client (the one call's inference) and on aiohttp (the metadata), and a kept-alive connection the
predictor closed while idle costs no retry."""

from __future__ import annotations

import asyncio

import numpy as np
import orjson
import pytest

from tests.unit.transformer.test_wire import Scripted, ok
from transformer.upstream import PredictorClient, UpstreamError

DROPPED = (b"", True)  # the connection closed without an answer
ANSWER = ok(orjson.dumps({"model_version": "7", "outputs": [{"name": "y", "data": [1.5]}]}))
METADATA = ok(orjson.dumps({"versions": ["7"], "inputs": [{"name": "closes", "shape": [-1, 60]}]}))
CLOSES = np.linspace(30.0, 31.0, 60)
# (call, its answer, what it returns, connections one attempt may take: aiohttp itself sends an
# idempotent GET once more on a connection closed without an answer, RFC 9112 9.3.1)
CALLS = {
    "forecast": ("forecast", ANSWER, ({"y": 1.5}, "7", {}), 1),  # the lean client
    "window": ("window", METADATA, (60, "7"), 2),  # aiohttp
}


def ask(client: PredictorClient, call: str):
    return client.forecast(CLOSES, {}) if call == "forecast" else client.window()


def calls(script, call: str, retries: int, pause_s: float = 0.0):
    """Each call's result (or the UpstreamError it raised), and the connections the predictor saw."""

    async def scenario():
        state = Scripted(script)
        server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        client = PredictorClient(url, "m", None, 2.0, retries, ttl_s=0)
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


def test_a_malformed_answer_is_a_transport_failure_too():
    (result,), connections = calls([(b"garbage\r\n\r\n", True), (ANSWER, False)], "forecast", retries=0)
    assert isinstance(result, UpstreamError) and result.status == 503 and "not an HTTP/1.1" in str(result)
    assert connections == 1


@pytest.mark.parametrize("call", ["forecast", "window"])
def test_a_timeout_is_never_retried(call):
    async def silent(reader, writer):
        await asyncio.sleep(3)
        writer.close()

    async def scenario():
        seen = []
        server = await asyncio.start_server(lambda r, w: seen.append(1) or silent(r, w), "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        client = PredictorClient(url, "m", None, 0.3, 3, ttl_s=0)
        async with server:
            with pytest.raises(UpstreamError, match="unreachable: TimeoutError") as caught:
                await ask(client, call)
            if client._session is not None:
                await client._session.close()
            server.close()
        return caught.value, len(seen)

    error, connections = asyncio.run(scenario())
    assert error.status == 503 and connections == 1


def test_an_idle_connection_the_predictor_closed_costs_no_retry():
    results, connections = calls([(ANSWER, True), (ANSWER, False)], "forecast", retries=0, pause_s=0.05)
    assert results == [({"y": 1.5}, "7", {})] * 2 and connections == 2


def test_the_one_calls_answer_carries_the_calibration_the_predictor_served():
    said = {"calibration": "bundle", "calibration_reason": "stale", "calibration_state_as_of": "2020-03-20"}
    body = {
        "model_version": "7",
        "parameters": {**said, "other": "x"},
        "outputs": [{"name": "y", "data": [1.5]}],
    }
    (result,), _ = calls([(ok(orjson.dumps(body)), False)], "forecast", retries=0)
    assert result == ({"y": 1.5}, "7", said)
