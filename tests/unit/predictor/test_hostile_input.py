"""Hostile and odd inputs (issue 14) in-process: each is a 400 naming the problem, never a 500 or a
silently wrong 200."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from kserve.errors import InvalidInput
from kserve.model_repository import ModelRepository
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

from bundle.outputs import outputs
from predictor import timeseries
from predictor.codecs import decode_v1, decode_v2, requested_outputs
from predictor.kserve_seam import ForecastDataPlane
from predictor.timeseries import strict_forecast_request
from serving.errors import Rejected
from tests.tiny_bundle import WINDOW, windows
from tests.unit.predictor.test_timeseries import body

W = 4
ROW = [1.0, 2.0, 3.0, 4.0]


def v2(data, shape, datatype="FP64", outputs_=None) -> InferRequest:
    requested = [RequestedOutput(n) for n in outputs_] if outputs_ else None
    return InferRequest(
        "m", infer_inputs=[InferInput("closes", shape, datatype, data)], request_outputs=requested
    )


def refused(call, reason: str, message: str) -> None:
    with pytest.raises(Rejected) as caught:
        call()
    assert caught.value.label == reason and message in caught.value.reason


def test_ragged_rows_are_refused_not_re_split():
    ragged = [[*ROW, 5.0], ROW[:3]]  # 5 + 3 values for shape [2, 4]: 8 values, but not two windows
    refused(lambda: decode_v2(v2(ragged, [2, W]), W, 8), "shape", "row 0 of input 'closes' has 5 values")


def test_rows_mixed_with_numbers_are_refused():
    refused(lambda: decode_v2(v2([ROW, 1.0], [2, W]), W, 8), "data", "mixes rows and numbers")


def test_an_integer_beyond_float64_is_refused():
    refused(lambda: decode_v2(v2([*ROW[:3], 10**400], [1, W]), W, 8), "data", "beyond the float64 range")
    refused(lambda: decode_v1({"instances": [[*ROW[:3], 10**400]]}, W, 8), "data", "beyond the float64 range")


def test_fp32_data_beyond_the_fp32_range_is_refused_fp64_accepts_it():
    big = [*ROW[:3], 1e39]
    refused(lambda: decode_v2(v2(big, [1, W], "FP32"), W, 8), "data", "beyond the FP32 range")
    assert decode_v2(v2(big, [1, W], "FP64"), W, 8)[0, 3] == 1e39
    largest = float(np.finfo(np.float32).max)  # the largest FP32 is in range
    assert decode_v2(v2([*ROW[:3], largest], [1, W], "FP32"), W, 8)[0, 3] == largest


def test_requested_outputs_are_honoured_and_unknown_ones_refused():
    declared = outputs((0.8, 0.95))
    picked = requested_outputs(v2(ROW, [1, W], outputs_=["upper_95", "forecast"]), declared)
    assert [o.name for o in picked] == ["forecast", "upper_95"]
    assert requested_outputs(v2(ROW, [1, W]), declared) == declared
    refused(lambda: requested_outputs(v2(ROW, [1, W], outputs_=["median"]), declared), "output", "'median'")


def test_the_v2_answer_holds_only_the_requested_outputs(model):
    response = model.predict(model.preprocess(v2(windows(1).tolist(), [1, WINDOW], outputs_=["lower_80"])))
    assert [o.name for o in response.outputs] == ["lower_80"]


def test_prices_near_the_float64_limit_are_refused_not_answered_with_null(model):
    extreme = np.full((1, WINDOW), 1.7e308)
    extreme[0, -1] = 1.79e308
    refused(
        lambda: model.predict(model.preprocess({"instances": extreme.tolist()})), "overflow", "not finite"
    )


@pytest.mark.parametrize(
    "series,reason,message",
    [
        ([float("nan"), *windows(1)[0]], "nan", "closes[0][0] is nan"),
        ([-1.0, *windows(1)[0]], "non_positive", "closes[0][0] is -1.0"),
    ],
)
def test_every_value_of_a_time_series_is_checked_not_only_the_last_window(model, series, reason, message):
    refused(lambda: timeseries.forecast(model, body(series), 20, 256), reason, message)


def test_a_start_timestamp_at_the_end_of_time_is_refused(model):
    request = body(windows(1)[0])
    request.inputs[0].start_timestamp = "9999-12-31"
    refused(lambda: timeseries.forecast(model, request, 20, 256), "timestamp", "past year 9999")


@pytest.mark.parametrize("value", ['"1"', "true", "null"])
def test_a_time_series_value_must_be_a_json_number(value):
    raw = (
        '{"model": "m", "inputs": [{"type": "univariate_time_series", "name": "s", "frequency": "D", '
        f'"series": [{value}, 2.0]}}], "options": {{"horizon": 1}}}}'
    )
    with pytest.raises(InvalidInput, match=r"invalid request body: .* at inputs/0/series"):
        strict_forecast_request(raw.encode())


@pytest.fixture
def dataplane():
    return ForecastDataPlane(model_registry=ModelRepository())


def test_json_is_json_whatever_content_type_it_declares(dataplane):
    v1 = json.dumps({"instances": [ROW]}).encode()
    decoded, _ = dataplane.decode(v1, {"content-type": "application/x-www-form-urlencoded"}, "v1", "m")
    assert decoded == {"instances": [ROW]}  # curl -d sends a form type
    v2_body = json.dumps({"inputs": [{"name": "closes", "shape": [1, W], "datatype": "FP64", "data": ROW}]})
    request = dataplane.decode_inference_request(v2_body.encode(), {}, "m")  # tritonclient: no type
    assert decode_v2(request, W, 1).tolist() == [ROW]


def binary(header: dict, payload: bytes) -> tuple[bytes, dict]:
    head = json.dumps(header).encode()
    return head + payload, {"inference-header-content-length": str(len(head))}


def tensor(parameters: dict, datatype: str = "FP64") -> dict:
    return {"inputs": [{"name": "closes", "shape": [1, W], "datatype": datatype, "parameters": parameters}]}


GOOD_BYTES = np.asarray(ROW).tobytes()
MALFORMED = {
    "short binary_data_size": (tensor({"binary_data_size": 8}), GOOD_BYTES),
    "odd binary_data_size": (tensor({"binary_data_size": 13}), GOOD_BYTES),
    "negative binary_data_size": (tensor({"binary_data_size": -8}), GOOD_BYTES),
    "string binary_data_size": (tensor({"binary_data_size": "32"}), GOOD_BYTES),
    "body shorter than declared": (tensor({"binary_data_size": 32}), GOOD_BYTES[:16]),
    "BYTES datatype": (tensor({"binary_data_size": 32}, "BYTES"), GOOD_BYTES),
    "shape [-1] and binary_data_size 0": (  # found by the fuzz test: kserve's InferenceError, a 500
        {
            "inputs": [
                {"name": "closes", "shape": [-1], "datatype": "FP64", "parameters": {"binary_data_size": 0}}
            ]
        },
        GOOD_BYTES,
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_binary_extension_requests_are_invalid_input(dataplane, case):
    header, payload = MALFORMED[case]
    raw, headers = binary(header, payload)
    with pytest.raises(InvalidInput):
        request = dataplane.decode_inference_request(raw, headers, "m")
        decode_v2(request, W, 1)


@pytest.mark.parametrize("declared", ["abc", "-5", "100000"])
def test_a_bad_inference_header_content_length_is_invalid_input(dataplane, declared):
    raw, _ = binary(tensor({"binary_data_size": 32}), GOOD_BYTES)
    with pytest.raises(InvalidInput, match="inference-header-content-length must be a byte count"):
        dataplane.decode_inference_request(raw, {"inference-header-content-length": declared}, "m")


def test_a_well_formed_binary_request_decodes(dataplane):
    raw, headers = binary(tensor({"binary_data_size": 32}), GOOD_BYTES)
    assert decode_v2(dataplane.decode_inference_request(raw, headers, "m"), W, 1).tolist() == [ROW]


def test_the_rest_handler_answers_rejections_with_one_error_object():
    from serving.guard import rejected_request

    response = asyncio.run(rejected_request(None, InvalidInput("bad")))
    assert response.status_code == 400 and json.loads(response.body) == {"error": "bad"}
