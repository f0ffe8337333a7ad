"""The transformer's fast path (transformer/fastpath.py): the real predictor on a tiny bundle, the
transformer's app as `python -m transformer` assembles it (in-process, one event loop), fast path on
and off over one model and one cache: the fast path is the one answering one calls (kserve's data
plane is never called), relayed calls still go through kserve's route, and both answer the same
bytes, errors included."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta

import pytest

from marketdata.cache import MarketData
from marketdata.calendar import SessionCalendar
from marketdata.sources import CsvSource
from serving.kserve_seam import LockedRepository, ServingDataPlane
from tests.clock import Clock
from tests.integration.servers import Predictor
from tests.integration.transformer.test_one_call import closes_through, write_b3_csv
from tests.tiny_bundle import write_tiny_bundle
from transformer import fastpath
from transformer.kserve_seam import TransformerRESTServer
from transformer.model import OneCallTransformer
from transformer.settings import TransformerSettings
from transformer.upstream import PredictorClient

pytestmark = pytest.mark.slow
NAME = "petr4"
V1, V2 = f"/v1/models/{NAME}:predict", f"/v2/models/{NAME}/infer"


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fastpath")
    write_tiny_bundle(tmp / "bundle")
    frame = write_b3_csv(tmp / "closes.csv")
    server = Predictor(tmp, NAME, str(tmp / "bundle"))
    try:
        yield server.wait_ready(), tmp / "closes.csv", frame
    finally:
        server.stop()


@pytest.fixture
def apps(predictor, monkeypatch):
    """(fast, kserve) test clients, each over its own transformer model, one fixed clock."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi import FastAPI
        from fastapi.responses import ORJSONResponse
        from fastapi.testclient import TestClient
    from kserve import model_server
    from kserve.model_repository import ModelRepository

    server, csv, _ = predictor
    clock = Clock(datetime(2024, 7, 1, 12, tzinfo=UTC))  # the same fetch time and age in both answers
    calendar = SessionCalendar("BVMF", timedelta(minutes=30))

    def build(fast: bool):
        settings = TransformerSettings(source="csv", csv=csv, calendar="BVMF", fast_path=fast)
        client = PredictorClient(server.url, NAME, None, 10.0, 0, 30.0)  # its own session, in its app's loop
        market = MarketData(CsvSource(csv), calendar, settings.policy, clock)
        model = OneCallTransformer(NAME, settings, market, calendar, client, clock)
        model.ready = True
        app = FastAPI(default_response_class=ORJSONResponse)
        monkeypatch.setattr(model_server, "app", app)
        repository = ModelRepository()
        repository.update(model)
        dataplane = ServingDataPlane(model_registry=repository)
        TransformerRESTServer("kserve.model_server:app", dataplane, LockedRepository(repository),
                              http_port=0).create_application()  # fmt: skip
        return app

    with TestClient(build(True)) as fast, TestClient(build(False)) as slow:
        yield fast, slow


@pytest.fixture
def kserve_calls(monkeypatch):
    calls = []
    original = ServingDataPlane.infer

    async def spy(self, model_name, request, headers=None):
        calls.append(model_name)
        return await original(self, model_name, request, headers)

    monkeypatch.setattr(ServingDataPlane, "infer", spy)
    return calls


@pytest.fixture
def fast_answers(monkeypatch):
    statuses = []
    original = fastpath.OneCallFastPath.respond

    async def spy(send, status, payload):
        statuses.append(status)
        await original(send, status, payload)

    monkeypatch.setattr(fastpath.OneCallFastPath, "respond", staticmethod(spy))
    return statuses


def v2_ask(**fields) -> dict:
    tensors = [{"name": k, "datatype": "BYTES", "shape": [1], "data": [v]} for k, v in fields.items()]
    return {"id": "fixed", "inputs": tensors}


def test_one_calls_are_answered_by_the_fast_path_and_relays_by_kserves_route(
    apps, predictor, kserve_calls, fast_answers
):
    fast, slow = apps
    assert fast.post(V1, json={"instances": [{"as_of": "2024-06-03"}]}).status_code == 200
    assert fast.post(V2, json=v2_ask(as_of="2024-06-03")).status_code == 200
    assert fast.post(V1, json={"instances": [{"as_of": "2099-01-01"}]}).status_code == 400
    assert kserve_calls == [] and fast_answers == [200, 200, 400]
    closes = closes_through(predictor[2], "2024-06-03").tolist()
    assert fast.post(V1, json={"instances": [closes]}).status_code == 200  # relayed: kserve's route
    assert kserve_calls == [NAME] and fast_answers == [200, 200, 400]
    assert slow.post(V1, json={"instances": [{"as_of": "2024-06-03"}]}).status_code == 200
    assert kserve_calls == [NAME, NAME] and fast_answers == [200, 200, 400]


CASES = {
    "v1": (V1, {"instances": [{"as_of": "2024-06-03"}]}),
    "v1-object": (V1, {"as_of": "2024-05-30"}),  # a holiday: the previous session, with a note
    "v1-empty": (V1, {}),
    "v1-ticker": (V1, {"instances": [{"ticker": "petr4.sa", "as_of": "2024-06-03"}]}),
    "v2": (V2, v2_ask(as_of="2024-06-03")),
    "v2-ticker": (V2, v2_ask(ticker="PETR4.SA")),
    "v2-no-inputs": (V2, {"id": "fixed", "inputs": []}),
    "future": (V1, {"instances": [{"as_of": "2099-01-01"}]}),
    "before-data": (V1, {"instances": [{"as_of": "2024-01-03"}]}),
    "bad-date": (V1, {"instances": [{"as_of": "June 3"}]}),
    "other-ticker": (V2, v2_ask(ticker="VALE3.SA")),
    "unknown-field": (V1, {"instances": [{"when": "2024-06-03"}]}),
    "two-instances": (V1, {"instances": [{}, {}]}),
    "not-an-object": (V1, [1, 2]),
    "v2-int-as-of": (V2, {"inputs": [{"name": "as_of", "datatype": "INT64", "shape": [1], "data": [1]}]}),
    "v2-two-values": (V2, {"inputs": [{**v2_ask(as_of="a")["inputs"][0], "data": ["a", "b"]}]}),
}  # fmt: skip


@pytest.mark.parametrize("name", CASES)
def test_the_fast_path_answers_what_kserves_route_answers(apps, name):
    fast, slow = apps
    path, body = CASES[name]
    answer, expected = fast.post(path, json=body), slow.post(path, json=body)
    assert (answer.status_code, answer.content) == (expected.status_code, expected.content)
    assert answer.headers["content-type"] == expected.headers["content-type"]


def test_the_predictor_refusing_the_call_is_the_same_502_both_ways(apps, predictor, monkeypatch):
    fast, slow = apps
    nowhere = property(lambda self: f"{predictor[0].url}/v2/models/nope")  # a model the predictor lacks
    monkeypatch.setattr(PredictorClient, "model_url", nowhere, raising=False)
    answer, expected = fast.post(V1, json={}), slow.post(V1, json={})
    assert answer.status_code == expected.status_code in (502, 503)
    assert answer.content == expected.content
