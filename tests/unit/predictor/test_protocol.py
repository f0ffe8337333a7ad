"""Protocol details (issue 14, item 10), in-process on the app the predictor assembles: the served
version in every answer and addressable, no nulls, one error shape per surface, the binary tensor
extension's outputs, upper-case datatypes, KServe's time-series error model and model list."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from kserve.errors import ModelNotFound
from kserve.model_repository import ModelRepository
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.infer_type import InferResponse
from kserve.protocol.rest.timeseries.types import ErrorResponse

from predictor.grpc_service import ForecastServicer
from predictor.kserve_seam import ForecastDataPlane
from predictor.model import ForecastModel
from predictor.settings import PredictorSettings
from serving.errors import Rejected, VersionNotFound
from serving.kserve_seam import LockedRepository
from tests.tiny_bundle import WINDOW, expected_forecast, windows
from tests.unit.predictor.conftest import make_model

ROWS = windows(2)
ALL = ["forecast", "lower_80", "upper_80", "lower_95", "upper_95"]


def v2_body(datatype: str = "FP64", **extra) -> dict:
    tensor = {"name": "closes", "shape": [2, WINDOW], "datatype": datatype, "data": ROWS.tolist()}
    return {"inputs": [tensor], **extra}


def series_body(**options) -> dict:
    item = {"type": "univariate_time_series", "name": "s", "series": ROWS[0].tolist(), "frequency": "D"}
    return {"model": "tiny", "inputs": [item], "options": {"horizon": 1, **options}}


@pytest.fixture
def client(model, serve_app):
    return serve_app(model)


def nulls(value) -> list:
    """Every null anywhere in a JSON document."""
    if isinstance(value, dict):
        return [n for v in value.values() for n in nulls(v)] + [k for k, v in value.items() if v is None]
    if isinstance(value, list):
        return [n for v in value for n in nulls(v)]
    return []


# -- the served version, no nulls -------------------------------------------------------------------
def test_a_v2_answer_names_the_served_version_and_holds_no_null(client, model):
    body = client.post("/v2/models/tiny/infer", json=v2_body()).json()
    advertised = client.get("/v2/models/tiny").json()["versions"]
    assert [body["model_version"]] == [model.served.version] == advertised
    assert nulls(body) == [] and body["parameters"] == {
        "calibration": "bundle",
        "calibration_reason": "disabled",
    }
    assert [o["name"] for o in body["outputs"]] == ALL


# -- versioned addressing: the served version, and no other -----------------------------------------
def test_the_served_version_is_addressable_on_every_versioned_route(client, model):
    version = model.served.version
    base = f"/v2/models/tiny/versions/{version}"
    assert client.get(base).json()["versions"] == [version]
    assert client.get(f"{base}/ready").json() == {"name": "tiny", "ready": True}
    answer = client.post(f"{base}/infer", json=v2_body()).json()
    assert answer["model_version"] == version
    np.testing.assert_allclose(answer["outputs"][0]["data"], expected_forecast(ROWS), rtol=1e-9)
    assert client.post(f"/v2/models/tiny/infer?model_version={version}", json=v2_body()).status_code == 200


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/v2/models/tiny/versions/999"),
        ("get", "/v2/models/tiny/versions/999/ready"),
        ("post", "/v2/models/tiny/versions/999/infer"),
        ("post", "/v2/models/tiny/infer?model_version=999"),
        ("get", "/v2/models/tiny/ready?model_version=999"),
    ],
)
def test_any_other_version_is_a_404_naming_the_served_one(client, model, method, path):
    response = getattr(client, method)(path, **({"json": v2_body()} if method == "post" else {}))
    assert response.status_code == 404
    assert response.json() == {"error": VersionNotFound("tiny", "999", model.served.version).reason}


def test_versioned_calls_before_a_bundle_is_served_are_not_ready_not_404(tmp_path, serve_app):
    client = serve_app(make_model(tmp_path / "not-there-yet"))
    assert client.get("/v2/models/tiny/versions/1/ready").status_code == 503
    assert client.post("/v2/models/tiny/versions/1/infer", json=v2_body()).status_code == 503


def test_an_unknown_model_is_a_404_whatever_the_version(client):
    response = client.get("/v2/models/other/versions/1")
    assert response.status_code == 404 and response.json() == {"error": ModelNotFound("other").reason}


def grpc_servicer(model: ForecastModel) -> ForecastServicer:
    repository = ModelRepository()
    repository.update(model)
    return ForecastServicer(ForecastDataPlane(model_registry=repository), LockedRepository(repository))


def test_grpc_agrees_served_version_answered_any_other_refused(model):
    servicer, version = grpc_servicer(model), model.served.version
    ready = asyncio.run(servicer.ModelReady(pb.ModelReadyRequest(name="tiny", version=version), None))
    meta = asyncio.run(servicer.ModelMetadata(pb.ModelMetadataRequest(name="tiny", version=version), None))
    assert ready.ready and list(meta.versions) == [version]
    for call, request in [
        (servicer.ModelReady, pb.ModelReadyRequest(name="tiny", version="999")),
        (servicer.ModelMetadata, pb.ModelMetadataRequest(name="tiny", version="999")),
        (servicer.ModelInfer, pb.ModelInferRequest(model_name="tiny", model_version="999")),
    ]:
        with pytest.raises(VersionNotFound, match="has no version '999'"):  # NOT_FOUND over gRPC
            asyncio.run(call(request, None))


def test_grpc_readiness_of_a_model_not_yet_served_is_false_whatever_the_version(tiny_dir):
    servicer = grpc_servicer(make_model(tiny_dir))  # not loaded: nothing starts its loader here
    assert not asyncio.run(servicer.ModelReady(pb.ModelReadyRequest(name="tiny", version="1"), None)).ready


def test_metadata_keeps_tritons_platform_name_and_lists_the_binary_extension(client, model):
    """Kept on purpose (docs/reliability.md): `onnxruntime_onnx` is Triton's name for this backend."""
    assert client.get("/v2/models/tiny").json()["platform"] == "onnxruntime_onnx"
    meta = asyncio.run(grpc_servicer(model).ModelMetadata(pb.ModelMetadataRequest(name="tiny"), None))
    assert meta.platform == "onnxruntime_onnx"
    assert client.get("/v2").json()["extensions"] == ["binary_tensor_data"]


# -- one error shape on v1 and v2 --------------------------------------------------------------------
JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    "method,path,kwargs,status",
    [
        ("get", "/nowhere", {}, 404),
        ("get", "/v2/models/tiny/nowhere", {}, 404),
        ("put", "/v2/models/tiny/infer", {}, 405),
        ("get", "/v2/models/tiny/infer", {}, 405),
        ("post", "/v2/models/tiny/infer", {"content": b"{not json", "headers": JSON}, 400),
        ("post", "/v2/models/tiny/infer", {"content": b"{not json"}, 400),
        ("post", "/v2/models/tiny/infer", {"json": {"inputs": "x"}}, 400),
        ("post", "/v1/models/tiny:predict", {"content": b"{not json", "headers": JSON}, 400),
        ("post", "/v2/models/tiny/infer", {"json": v2_body(datatype="INT8")}, 400),
        ("post", "/v2/repository/models/tiny/unload", {}, 403),
        ("post", "/v1/models/tiny:explain", {"json": {}}, 404),
    ],
)
def test_every_v1_and_v2_error_is_one_error_string(client, method, path, kwargs, status):
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]


def test_a_parse_error_names_its_place_without_echoing_the_input(client):
    response = client.post("/v2/models/tiny/infer", json={"inputs": [{"name": "closes", "shape": "NaN!"}]})
    assert response.status_code == 400 and "inputs/0/shape" in response.json()["error"]
    assert "NaN!" not in response.text


# -- binary tensor extension: outputs ---------------------------------------------------------------
def binary_answer(response) -> InferResponse:
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers["inference-header-content-length"])
    return InferResponse.from_bytes(response.content, length)


def test_binary_data_output_answers_every_output_as_raw_bytes(client):
    response = client.post("/v2/models/tiny/infer", json=v2_body(parameters={"binary_data_output": True}))
    header = json.loads(response.content[: int(response.headers["inference-header-content-length"])])
    assert all("data" not in o and o["parameters"] == {"binary_data_size": 16} for o in header["outputs"])
    answer = binary_answer(response)
    assert [o.name for o in answer.outputs] == ALL
    np.testing.assert_allclose(answer.outputs[0].as_numpy(), expected_forecast(ROWS), rtol=1e-9)


def test_an_outputs_own_binary_data_overrides_the_request_default(client):
    wanted = [{"name": "forecast", "parameters": {"binary_data": False}}, {"name": "upper_95"}]
    response = client.post(
        "/v2/models/tiny/infer", json=v2_body(outputs=wanted, parameters={"binary_data_output": True})
    )
    header = json.loads(response.content[: int(response.headers["inference-header-content-length"])])
    forecast, upper = header["outputs"]
    assert forecast["data"] == pytest.approx(expected_forecast(ROWS).tolist(), rel=1e-9)
    assert "data" not in upper and upper["parameters"] == {"binary_data_size": 16}
    assert binary_answer(response).outputs[1].as_numpy().shape == (2,)


def test_json_stays_the_default_and_a_non_boolean_flag_is_refused(client):
    plain = client.post("/v2/models/tiny/infer", json=v2_body(outputs=[{"name": "forecast"}]))
    assert "inference-header-content-length" not in plain.headers and "data" in plain.json()["outputs"][0]
    bad = client.post("/v2/models/tiny/infer", json=v2_body(parameters={"binary_data_output": "yes"}))
    assert bad.status_code == 400
    assert bad.json() == {"error": "parameter 'binary_data_output' must be true or false, got 'yes'"}


# -- datatypes are upper-case, on REST as on gRPC -----------------------------------------------------
def binary_request(datatype: str) -> tuple[bytes, dict]:
    head = json.dumps({"inputs": [{"name": "closes", "shape": [2, WINDOW], "datatype": datatype,
                                   "parameters": {"binary_data_size": ROWS.nbytes}}]}).encode()  # fmt: skip
    return head + ROWS.tobytes(), {"inference-header-content-length": str(len(head))}


@pytest.mark.parametrize("datatype", ["fp64", "Fp32"])
def test_a_lower_case_datatype_is_refused_on_every_rest_path_and_on_grpc(client, model, datatype):
    message = f"datatype {datatype!r} is not a protocol datatype: they are upper-case ({datatype.upper()!r})"
    raw, headers = binary_request(datatype)
    for kwargs in ({"json": v2_body(datatype)}, {"content": json.dumps(v2_body(datatype))},
                   {"content": raw, "headers": headers}):  # fmt: skip
        response = client.post("/v2/models/tiny/infer", **kwargs)
        assert response.status_code == 400 and message in response.json()["error"]
    tensor = pb.ModelInferRequest.InferInputTensor(name="closes", datatype=datatype, shape=[2, WINDOW])
    request = pb.ModelInferRequest(model_name="tiny", inputs=[tensor], raw_input_contents=[ROWS.tobytes()])
    with pytest.raises(Rejected, match=message.replace("(", r"\(").replace(")", r"\)")):
        asyncio.run(grpc_servicer(model).ModelInfer(request, None))


# -- KServe's time-series API: its error model, its model list ----------------------------------------
def assert_timeseries_error(response, status: int, param: str, kind: str) -> str:
    assert response.status_code == status
    body = response.json()
    ErrorResponse.model_validate(body)  # kserve's own model of the error
    assert set(body["error"]) == {"code", "message", "param", "type"}
    assert body["error"]["code"] == str(status) and body["error"]["type"] == kind
    assert body["error"]["param"] == param
    return body["error"]["message"]


@pytest.mark.parametrize(
    "body,param,message",
    [
        (series_body(horizon=0), "options.horizon", "horizon 0 is outside 1..20"),
        (series_body(quantiles=[0.3]), "options.quantiles", "quantiles [0.3] are not available"),
        ({**series_body(), "inputs": []}, "inputs", "inputs is empty"),
        ({**series_body(), "options": {"horizon": "1"}}, "options.horizon", "invalid request body"),
        ({"model": "tiny"}, "inputs", "Field required"),
    ],
)
def test_time_series_errors_are_kserves_error_model(client, body, param, message):
    response = client.post("/v1/timeseries/forecast", json=body)
    assert message in assert_timeseries_error(response, 400, param, "BadRequestError")


def test_time_series_refusals_outside_the_handler_keep_the_error_model(client, tiny_dir, serve_app):
    assert_timeseries_error(client.post("/v1/timeseries/forecast", content=b"{x", headers=JSON),
                            400, "1", "BadRequestError")  # fmt: skip
    assert_timeseries_error(client.get("/v1/timeseries/forecast"), 405, "", "MethodNotAllowedError")
    assert_timeseries_error(client.get("/v1/timeseries/nowhere"), 404, "", "NotFoundError")
    unknown = client.post("/v1/timeseries/forecast", json={**series_body(), "model": "other"})
    assert "does not exist" in assert_timeseries_error(unknown, 404, "", "NotFoundError")
    guarded = serve_app(make_model(tiny_dir, api_token="s3cret"))
    refused = guarded.post("/v1/timeseries/forecast", json=series_body())
    assert "bearer token" in assert_timeseries_error(refused, 401, "", "UnauthorizedError")


def test_the_time_series_model_list_names_the_served_models(client):
    response = client.get("/v1/timeseries/models")
    assert response.status_code == 200 and response.json() == ["tiny"]


# -- quantile levels are exact -----------------------------------------------------------------------
def test_a_format_1_bundle_refuses_a_level_it_does_not_have_even_next_to_one_it_has(client):
    near = client.post("/v1/timeseries/forecast", json=series_body(quantiles=[0.1000001]))
    message = assert_timeseries_error(near, 400, "options.quantiles", "BadRequestError")
    assert "quantiles [0.1000001] are not available" in message
    exact = client.post("/v1/timeseries/forecast", json=series_body(quantiles=[0.1, 0.975]))
    assert set(exact.json()["outputs"][0]["content"][0]["quantiles"]) == {"0.1", "0.975"}


def test_a_format_2_bundle_answers_0_1000001_with_its_own_values(tmp_path):
    from tests.unit.bundle.test_served_quantiles import WINDOW as WINDOW_2
    from tests.unit.bundle.test_served_quantiles import bundle

    bundle(tmp_path, 2)
    model = ForecastModel("tiny", PredictorSettings(model_source=str(tmp_path)))
    assert model.try_reload()
    forecaster = model.served.forecaster
    result = forecaster.forecast(windows(1, WINDOW_2), horizon=1)
    at = {q: float(forecaster.quantile(result, q)[0, 0]) for q in (0.1, 0.1000001, 0.1000002)}
    assert at[0.1] < at[0.1000001] < at[0.1000002]  # its own level, monotone, not 0.1's values
