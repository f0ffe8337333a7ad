"""v2 JSON without kserve's objects (serving/v2.py): what a fast path reads is what kserve's pydantic
model accepts unchanged, and the one answer writer writes what kserve's response model writes."""

from __future__ import annotations

import orjson
import pytest
from kserve.protocol.rest.v2_datamodels import InferenceRequest, InferenceResponse

from serving.asgi import FallThroughError
from serving.v2 import checked_request, v2_answer

ANSWERS = [
    {
        "id": "r1", "model_name": "m", "model_version": "3",
        "outputs": [
            {"name": "forecast", "shape": [2], "datatype": "FP64", "data": [31.4, 1e-300]},
            {"name": "lower_80", "shape": [2], "datatype": "FP32", "data": [30.5, 2.0]},
        ],
    },
    {
        "id": "r2", "model_name": "m", "model_version": None, "parameters": {"p": 1},
        "outputs": [
            {"name": "forecast", "shape": [1], "datatype": "FP64", "parameters": {"q": "x"},
             "data": [1.5]},
        ],
    },
]  # fmt: skip


@pytest.mark.parametrize("response", ANSWERS)
def test_the_v2_answer_is_the_bytes_kserves_response_model_writes_without_nulls(response):
    """The lean answer must stay what kserve's InferenceResponse (validated, dumped without nulls)
    wrote: same fields, same order, same numbers."""
    model = InferenceResponse.model_validate(response)
    expected = orjson.dumps(model.model_dump(mode="json", exclude_none=True))
    assert v2_answer(response) == expected
    assert b"null" not in v2_answer(response)


def test_with_nulls_it_is_what_kserves_own_route_writes():
    response = {
        "model_name": "m", "model_version": None, "id": "r",
        "outputs": [{"name": "stale", "shape": [1], "datatype": "BOOL", "parameters": None, "data": [False]}],
    }  # fmt: skip
    model = InferenceResponse.model_validate(response)
    assert v2_answer(response, nulls=True) == orjson.dumps(model.model_dump(mode="json"))


TENSOR = {"name": "closes", "shape": [1, 2], "datatype": "FP64", "data": [1.0, 2.0]}


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": [TENSOR]},
        {"id": "a", "inputs": [{**TENSOR, "parameters": {"x": 1, "y": "s", "z": True, "w": 0.5}}]},
        {"inputs": [TENSOR], "outputs": [{"name": "forecast", "parameters": {"binary_data": False}}]},
        {"inputs": [TENSOR], "outputs": [], "parameters": {"binary_data_output": False}},
    ],
)
def test_what_kserves_model_accepts_unchanged_is_read_as_sent(body):
    request = checked_request(body, ("FP32", "FP64"))
    assert request.inputs is body["inputs"] and request.id == body.get("id")
    assert request.outputs is body.get("outputs") and request.parameters is body.get("parameters")
    InferenceRequest.model_validate(body)  # kserve's own model takes it too


@pytest.mark.parametrize(
    "body",
    [
        [TENSOR],
        {"inputs": TENSOR},
        {"inputs": [TENSOR], "extra": 1},
        {"id": 7, "inputs": [TENSOR]},
        {"inputs": [{**TENSOR, "shape": [1.0, 2]}]},
        {"inputs": [{**TENSOR, "datatype": "INT64"}]},
        {"inputs": [{**TENSOR, "data": "1,2"}]},
        {"inputs": [{**TENSOR, "name": 3}]},
        {"inputs": [{**TENSOR, "parameters": {"a": None}}]},
        {"inputs": [{**TENSOR, "other": 1}]},
        {"inputs": [TENSOR], "outputs": {"name": "forecast"}},
        {"inputs": [TENSOR], "outputs": [{"name": "forecast", "extra": 1}]},
        {"inputs": [TENSOR], "parameters": {"a": [1]}},
    ],
)
def test_what_kserves_model_would_coerce_or_refuse_falls_through(body):
    with pytest.raises(FallThroughError):
        checked_request(body, ("FP32", "FP64"))
