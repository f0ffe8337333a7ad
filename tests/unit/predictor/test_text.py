"""A JSON string holding a lone UTF-16 surrogate (`"\\ud800"`: valid JSON that Python's json and
FastAPI accept) is a 400 naming the field on every route of the predictor, fast path on and off,
with the same status and bytes both ways (issue 23: an id holding one was a 500 on both paths).
Non-BMP characters are text like any other. In-process on the app the predictor assembles."""

from __future__ import annotations

import json

import pytest

from tests.tiny_bundle import WINDOW, windows
from tests.unit.predictor.conftest import make_model

LONE = "\ud800"
ROW = windows(1)[0].tolist()
V2, V1, SERIES = "/v2/models/tiny/infer", "/v1/models/tiny:predict", "/v1/timeseries/forecast"


def tensor(**extra) -> dict:
    return {"name": "closes", "shape": [1, WINDOW], "datatype": "FP64", "data": [ROW], **extra}


def series(**extra) -> dict:
    item = {"type": "univariate_time_series", "name": "s", "series": ROW, "frequency": "D", **extra}
    return {"model": "tiny", "inputs": [item], "options": {"horizon": 1}}


# (route, body, the field the 400 names)
CASES = {
    "v2-id": (V2, {"id": LONE, "inputs": [tensor()]}, "id"),
    "v2-id-inside": (V2, {"id": f"req-{LONE}-1", "inputs": [tensor()]}, "id"),
    "v2-low-surrogate": (V2, {"id": "\udc00", "inputs": [tensor()]}, "id"),
    "v2-input-name": (V2, {"inputs": [tensor(name=LONE)]}, "inputs.0.name"),
    "v2-datatype": (V2, {"inputs": [tensor(datatype=LONE)]}, "inputs.0.datatype"),
    "v2-parameter-key": (V2, {"inputs": [tensor()], "parameters": {LONE: 1}}, "parameters.\\ud800"),
    "v2-parameter-value": (V2, {"inputs": [tensor()], "parameters": {"x": LONE}}, "parameters.x"),
    "v2-input-parameter": (V2, {"inputs": [tensor(parameters={"x": LONE})]}, "inputs.0.parameters.x"),
    "v2-output-name": (V2, {"inputs": [tensor()], "outputs": [{"name": LONE}]}, "outputs.0.name"),
    "v2-output-parameter": (V2, {"inputs": [tensor()], "outputs": [{"name": "forecast",
                            "parameters": {"binary_data": LONE}}]}, "outputs.0.parameters.binary_data"),
    "v2-data": (V2, {"inputs": [tensor(data=[LONE] * WINDOW)]}, "input 'closes' data"),
    "v1-instance": (V1, {"instances": [[LONE] * WINDOW]}, "instances.0.0"),
    "v1-other-key": (V1, {"instances": [ROW], "x": LONE}, "x"),
    "series-model": (SERIES, {**series(), "model": LONE}, "model"),
    "series-name": (SERIES, series(name=LONE), "inputs.0.name"),
    "series-start": (SERIES, series(start_timestamp=LONE), "inputs.0.start_timestamp"),
    "series-frequency": (SERIES, series(frequency=LONE), "inputs.0.frequency"),
    "series-key": (SERIES, {**series(), LONE: 1}, "\\ud800"),
}  # fmt: skip


@pytest.fixture(scope="module")
def apps(tiny_dir):
    """(fast path on, off) over the same bundle, as the predictor assembles them."""
    import warnings

    from fastapi import FastAPI
    from fastapi.responses import ORJSONResponse

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from kserve import model_server
    from kserve.model_repository import ModelRepository

    from predictor.kserve_seam import ForecastDataPlane, ForecastRESTServer
    from serving.kserve_seam import LockedRepository

    built, original = [], model_server.app
    for fast in (True, False):
        model = make_model(tiny_dir, fast_path=fast)
        assert model.try_reload()
        model_server.app = app = FastAPI(default_response_class=ORJSONResponse)
        repository = ModelRepository()
        repository.update(model)
        dataplane = ForecastDataPlane(model_registry=repository)
        ForecastRESTServer("kserve.model_server:app", dataplane, LockedRepository(repository),
                           http_port=0).create_application()  # fmt: skip
        built.append(TestClient(app, raise_server_exceptions=False))
    model_server.app = original
    return built


def post(client, path: str, body: dict, content_type: str = "application/json"):
    # json.dumps writes a lone surrogate as its escape: the raw body is valid JSON
    return client.post(path, content=json.dumps(body).encode(), headers={"content-type": content_type})


@pytest.mark.parametrize("case", list(CASES))
def test_a_lone_surrogate_is_a_400_naming_its_field_on_both_paths(apps, case):
    path, body, field = CASES[case]
    fast, kserve = (post(client, path, body) for client in apps)
    assert fast.status_code == 400, fast.text
    assert (fast.status_code, fast.content) == (kserve.status_code, kserve.content)
    error = fast.json()["error"]
    message = error["message"] if path == SERIES else error
    assert field in message, message
    if path == SERIES and "holds a lone" in message:
        assert error["param"] == field


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_json_sent_with_another_content_type_is_checked_the_same(apps, content_type):
    for client in apps:
        answer = post(client, V2, {"id": LONE, "inputs": [tensor()]}, content_type)
        assert answer.status_code == 400 and answer.json()["error"].startswith("id holds a lone UTF-16")


def test_the_binary_extensions_header_is_checked_the_same(apps):
    import struct

    header = json.dumps({"id": LONE, "inputs": [{**tensor(), "data": None,
                         "parameters": {"binary_data_size": 8 * WINDOW}}]}).encode()  # fmt: skip
    header = header.replace(b', "data": null', b"")
    body = header + struct.pack(f"<{WINDOW}d", *ROW)
    for client in apps:
        answer = client.post(V2, content=body, headers={"inference-header-content-length": str(len(header))})
        assert answer.status_code == 400 and answer.json()["error"].startswith("id holds a lone UTF-16")


@pytest.mark.parametrize("escaped", [True, False], ids=["escaped-pair", "raw-utf8"])
def test_non_bmp_characters_are_text_and_echoed_intact(apps, escaped):
    body = {"id": "req-\U0001f600-𝔁", "inputs": [tensor()]}
    raw = json.dumps(body, ensure_ascii=escaped).encode()
    answers = [c.post(V2, content=raw, headers={"content-type": "application/json"}) for c in apps]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].content == answers[1].content and answers[0].json()["id"] == "req-\U0001f600-𝔁"


def server_errors() -> float:
    from prometheus_client import REGISTRY

    samples = [s for m in REGISTRY.collect() if m.name == "forecaster_requests" for s in m.samples]
    return sum(s.value for s in samples if s.name.endswith("_total") and s.labels["code"].startswith("5"))


def test_no_refusal_is_counted_as_a_server_error(apps):
    before = server_errors()
    for client in apps:
        for path, body, _ in CASES.values():
            assert post(client, path, body).status_code < 500
    assert server_errors() == before
