"""The fast path (predictor/fastpath.py), in-process on the app the predictor assembles: it is the one
answering JSON inference (kserve's data plane is never called, and answers come even when kserve's
route could not), what it does not fully handle reaches kserve's route, and on the same requests it
answers what kserve's route answers: status, bytes and rejection counters."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from prometheus_client import REGISTRY

from predictor import fastpath
from predictor.kserve_seam import ForecastDataPlane
from tests.tiny_bundle import WINDOW, expected_forecast, windows
from tests.unit.predictor.conftest import make_model

ROWS = windows(3)


def tensor(rows=ROWS, datatype="FP64", **extra) -> dict:
    rows = np.asarray(rows)
    return {"name": "closes", "shape": list(rows.shape), "datatype": datatype, "data": rows.tolist(), **extra}


V2 = "/v2/models/tiny/infer"


def v2(inp: dict | None = None, **fields) -> dict:
    """A v2 body with a fixed id (answers compare byte for byte) and one input, `tensor()` by default."""
    return {"id": "fixed", "inputs": [tensor() if inp is None else inp], **fields}


@pytest.fixture
def kserve_calls(monkeypatch):
    """Every call into kserve's data plane inference (what every kserve route runs to infer)."""
    calls = []
    original = ForecastDataPlane.infer

    async def spy(self, model_name, request, headers=None):
        calls.append(model_name)
        return await original(self, model_name, request, headers)

    monkeypatch.setattr(ForecastDataPlane, "infer", spy)
    return calls


@pytest.fixture
def fast_answers(monkeypatch):
    """Every answer the fast path writes (its one writer, FastPath.respond): statuses in order."""
    statuses = []
    original = fastpath.FastPath.respond

    async def spy(send, status, payload):
        statuses.append(status)
        await original(send, status, payload)

    monkeypatch.setattr(fastpath.FastPath, "respond", staticmethod(spy))
    return statuses


@pytest.fixture
def apps(tiny_dir, serve_app):
    """(fast, kserve): the same bundle behind the predictor as assembled, fast path on and off."""
    fast, slow = make_model(tiny_dir), make_model(tiny_dir, fast_path=False)
    assert fast.try_reload() and slow.try_reload()
    assert fast.served.version == slow.served.version
    return serve_app(fast), serve_app(slow)


def rejected() -> dict[str, float]:
    return {
        s.labels["reason"]: s.value
        for metric in REGISTRY.collect()
        if metric.name == "forecaster_rejected_requests"
        for s in metric.samples
        if s.name.endswith("_total")
    }


def delta(before: dict, after: dict) -> dict:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


# -- the fast path is the one answering -------------------------------------------------------------
def test_json_inference_never_reaches_kserves_data_plane(apps, kserve_calls, fast_answers):
    fast, slow = apps
    v2 = {"id": "r1", "inputs": [tensor()]}
    v1 = {"instances": ROWS.tolist()}
    assert fast.post("/v2/models/tiny/infer", json=v2).status_code == 200
    assert fast.post("/v1/models/tiny:predict", json=v1).status_code == 200
    assert fast.post("/v2/models/tiny/infer", json={"inputs": [tensor(ROWS[:, 1:])]}).status_code == 400
    assert kserve_calls == [] and fast_answers == [200, 200, 400]
    assert slow.post("/v2/models/tiny/infer", json=v2).status_code == 200
    assert kserve_calls == ["tiny"] and fast_answers == [200, 200, 400]  # the spies see kserve's route


def test_it_answers_when_kserves_route_cannot(apps, monkeypatch):
    fast, slow = apps

    async def broken(self, *args, **kwargs):
        raise RuntimeError("kserve's route was used")

    monkeypatch.setattr(ForecastDataPlane, "infer", broken)
    answer = fast.post("/v2/models/tiny/infer", json={"inputs": [tensor()]})
    assert answer.status_code == 200
    np.testing.assert_allclose(answer.json()["outputs"][0]["data"], expected_forecast(ROWS))
    assert fast.post("/v1/models/tiny:predict", json={"instances": ROWS.tolist()}).status_code == 200
    with pytest.raises(RuntimeError, match="kserve's route was used"):  # the test client re-raises
        slow.post("/v2/models/tiny/infer", json={"inputs": [tensor()]})


def binary_request() -> tuple[bytes, dict]:
    spec = {"name": "closes", "shape": [1, WINDOW], "datatype": "FP64"}
    header = json.dumps(
        {"id": "bin", "inputs": [{**spec, "parameters": {"binary_data_size": 8 * WINDOW}}]}
    ).encode()
    raw = struct.pack(f"<{WINDOW}d", *ROWS[0])
    return header + raw, {"inference-header-content-length": str(len(header))}


@pytest.mark.parametrize(
    "path, kwargs",
    [
        (V2, {"content": binary_request()[0], "headers": binary_request()[1]}),
        (V2, {"json": v2(parameters={"binary_data_output": True})}),
        (V2, {"content": b'{"inputs": [' + b"NaN]}"}),
        (V2 + "?model_version=x", {"json": v2()}),
        ("/v2/models/tiny/versions/nope/infer", {"json": v2()}),
        ("/v2/models/other/infer", {"json": v2()}),
        (V2, {"json": v2({**tensor(), "shape": [3.0, WINDOW]})}),
        (V2, {"json": v2(), "headers": {"ce-specversion": "1.0"}}),
    ],
    ids=[
        "binary-extension",
        "binary-outputs",
        "nan-literal",
        "query",
        "other-version",
        "unknown-model",
        "coerced-shape",
        "cloudevent",
    ],
)
def test_what_it_does_not_fully_handle_goes_to_kserves_route(apps, kserve_calls, fast_answers, path, kwargs):
    fast, slow = apps
    answer, expected = fast.post(path, **kwargs), slow.post(path, **kwargs)
    assert (answer.status_code, answer.content) == (expected.status_code, expected.content)
    assert fast_answers == []  # kserve's route wrote it (the body was replayed to it whole)
    assert len(kserve_calls) == (2 if answer.status_code == 200 else 0)


# -- the same answers as kserve's route ------------------------------------------------------------
V1 = "/v1/models/tiny:predict"
CASES = {
    "batch-3": (V2, v2()),
    "fp32-flat": (V2, v2({**tensor(ROWS[:1], "FP32"), "data": ROWS[0].tolist()})),
    "outputs-subset": (V2, v2(outputs=[{"name": "upper_95"}, {"name": "forecast"}])),
    "json-flags": (V2, v2(parameters={"binary_data_output": False},
                          outputs=[{"name": "forecast", "parameters": {"binary_data": False}}])),
    "int-closes": (V2, v2(tensor(np.round(ROWS[:1] * 100).astype(int)))),
    "parameters-on-input": (V2, v2(tensor(parameters={"x": 1}))),
    "v1": (V1, {"instances": ROWS.tolist()}),
    "v1-empty": (V1, {"instances": []}),
    "v1-ragged": (V1, {"instances": [ROWS[0].tolist(), ROWS[0][:-1].tolist()]}),
    "v1-strings": (V1, {"instances": [["1"] * WINDOW]}),
    "negative": (V2, v2(tensor(-ROWS))),
    "zero": (V2, v2(tensor(ROWS * 0))),
    "huge": (V2, v2(tensor(ROWS * 1e305))),
    "fp32-overflow": (V2, v2(tensor(ROWS * 1e300, "FP32"))),
    "window": (V2, v2(tensor(ROWS[:, :-1]))),
    "rank": (V2, v2({**tensor(), "shape": [3 * WINDOW]})),
    "size": (V2, v2({**tensor(), "shape": [4, WINDOW]})),
    "empty-batch": (V2, v2({**tensor(), "shape": [0, WINDOW], "data": []})),
    "too-many": (V2, v2(tensor(np.repeat(ROWS, 100, axis=0)))),
    "name": (V2, v2({**tensor(), "name": "prices"})),
    "two-inputs": (V2, {"inputs": [tensor(), tensor()]}),
    "no-inputs": (V2, {"inputs": []}),
    "strings": (V2, v2({**tensor(), "data": ["x"] * (3 * WINDOW)})),
    "bools": (V2, v2({**tensor(), "data": [True] * (3 * WINDOW)})),
    "nulls": (V2, v2({**tensor(), "data": [None] * (3 * WINDOW)})),
    "mixed-rows": (V2, v2({**tensor(), "data": [ROWS[0].tolist(), 1.0]})),
    "deep": (V2, v2({**tensor(), "data": [[[1.0] * WINDOW]] * 3})),
    "unknown-output": (V2, v2(outputs=[{"name": "median"}])),
    "flag-not-bool": (V2, v2(parameters={"binary_data_output": "yes"})),
    "lower-case": (V2, v2(tensor(datatype="fp64"))),
    "bad-datatype": (V2, v2(tensor(datatype="INT64"))),
    "id-not-string": (V2, {"id": 7, "inputs": [tensor()]}),
    "null-parameter": (V2, v2(parameters={"a": None})),
    "not-an-object": (V2, [tensor()]),
    "extra-field": (V2, v2(extra=1)),
    "v1-not-an-object": (V1, [ROWS.tolist()]),
    "v1-other-key": (V1, {"rows": ROWS.tolist()}),
}  # fmt: skip


@pytest.mark.parametrize("name", CASES)
def test_it_answers_what_kserves_route_answers(apps, name):
    """Same status, same bytes (same headers that matter), same rejection counted, both ways."""
    fast, slow = apps
    path, body = CASES[name]
    before = rejected()
    answer = fast.post(path, json=body)
    counted = delta(before, rejected())
    before = rejected()
    expected = slow.post(path, json=body)
    assert (answer.status_code, answer.content) == (expected.status_code, expected.content)
    assert answer.headers["content-type"] == expected.headers["content-type"]
    assert counted == delta(before, rejected())


def test_an_answer_without_id_differs_from_kserves_only_in_its_fresh_id(apps):
    fast, slow = apps
    answer = fast.post("/v2/models/tiny/infer", json={"inputs": [tensor()]}).json()
    expected = slow.post("/v2/models/tiny/infer", json={"inputs": [tensor()]}).json()
    assert len(answer.pop("id")) == len(expected.pop("id")) == 32
    assert answer == expected


def test_a_chunked_body_is_read_whole(apps):
    fast, _ = apps
    body = b'{"inputs": [%s]}' % json.dumps(tensor()).encode()
    answer = fast.post("/v2/models/tiny/infer", content=iter([body[:10], body[10:]]))
    assert answer.status_code == 200
    np.testing.assert_allclose(answer.json()["outputs"][0]["data"], expected_forecast(ROWS))


# -- the same answers whatever else is in flight (issue 23) -------------------------------------------
class InFlight:
    """ASGI wrapper whose body arrives a loop turn later, as over a socket (uvicorn's requests
    interleave at that wait), counting the requests inside the app at once."""

    def __init__(self, app) -> None:
        self.app, self.now, self.peak = app, 0, 0

    async def __call__(self, scope, receive, send):
        import asyncio

        async def arriving():
            await asyncio.sleep(0)
            return await receive()

        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await self.app(scope, arriving, send)
        finally:
            self.now -= 1


def mixed_requests(count: int) -> list[tuple[str, dict]]:
    """v2 and v1 requests of 1 to 4 rows of different windows (levels, trends, noise), a few refused."""
    rng = np.random.default_rng(23)
    requests = []
    for i in range(count):
        rows = windows(int(rng.integers(1, 5)), start=float(rng.uniform(5, 500)))
        rows = rows * np.exp(rng.normal(0, 0.02, rows.shape))
        if i % 17 == 0:
            rows = rows[:, 1:]  # a short window: 400 on both paths
        if i % 5 == 0:
            requests.append((V1, {"instances": rows.tolist()}))
        else:
            requests.append((V2, v2(tensor(rows), id=f"r{i}")))
    return requests


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_under_concurrency_it_answers_kserves_bytes_by_default(tiny_dir, serve_app, variant):
    """240 requests, up to 24 in flight on one event loop (as uvicorn runs them), settings at their
    defaults: each answer is byte for byte kserve's route's answer to the same request alone. With
    batching on (the default before issue 23), requests read in the same loop turn shared one
    onnxruntime call: the int8 variant's dynamic quantization scales by the batch's range, so an
    answer depended on its neighbours (fp32 may differ in the last bits too, by CPU)."""
    import asyncio

    import httpx

    fast, slow = make_model(tiny_dir, variant=variant), make_model(tiny_dir, variant=variant, fast_path=False)
    assert fast.settings.batching is False and fast.try_reload() and slow.try_reload()
    app = InFlight(serve_app(fast).app)
    kserve = serve_app(slow)
    requests = mixed_requests(240)

    async def send_all() -> list[httpx.Response]:
        limit = asyncio.Semaphore(24)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:

            async def one(path: str, body: dict) -> httpx.Response:
                async with limit:
                    return await client.post(path, json=body)

            return await asyncio.gather(*(one(path, body) for path, body in requests))

    answers = asyncio.run(send_all())
    assert app.peak >= 8, f"only {app.peak} requests were ever in flight together"
    statuses = {a.status_code for a in answers}
    assert statuses == {200, 400}
    for (path, body), answer in zip(requests, answers, strict=True):
        expected = kserve.post(path, json=body)
        assert (answer.status_code, answer.content) == (expected.status_code, expected.content), body
