"""Refusals (serving/errors.py, answered by serving/guard.py): one table of statuses for REST, gRPC
and both fast paths, one log line each, never a traceback."""

from __future__ import annotations

import asyncio
import json

import pytest
from grpc import StatusCode
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady

from serving.errors import (
    NotReadyError,
    Rejected,
    RepositoryLockedError,
    VersionNotFound,
    grpc_code,
    refusal,
)
from serving.guard import rejected_request


def test_a_rejected_request_is_one_log_line_without_traceback(caplog):
    with caplog.at_level("INFO", logger="predictor.rejected"):
        response = asyncio.run(rejected_request(None, Rejected("window", "window length is 3")))
    assert response.status_code == 400 and json.loads(response.body) == {"error": "window length is 3"}
    (record,) = caplog.records
    assert record.getMessage() == "rejected (400): window length is 3" and record.exc_info is None


@pytest.mark.parametrize("exc,status", [(ModelNotFound("nope"), 404), (NotReadyError("m"), 503)])
def test_unknown_and_not_ready_models_keep_kserves_status_without_the_traceback(caplog, exc, status):
    with caplog.at_level("INFO", logger="predictor.rejected"):
        response = asyncio.run(rejected_request(None, exc))
    assert response.status_code == status and json.loads(response.body) == {"error": str(exc)}
    (record,) = caplog.records
    assert record.exc_info is None


@pytest.mark.parametrize(
    "exc,status,code",
    [
        (InvalidInput("bad"), 400, StatusCode.INVALID_ARGUMENT),
        (Rejected("window", "window length is 3"), 400, StatusCode.INVALID_ARGUMENT),
        (ModelNotFound("m"), 404, StatusCode.NOT_FOUND),
        (VersionNotFound("m", "9", "3"), 404, StatusCode.NOT_FOUND),
        (ModelNotReady("m"), 503, StatusCode.UNAVAILABLE),
        (NotReadyError("m"), 503, StatusCode.UNAVAILABLE),
        (RepositoryLockedError("unload"), 501, StatusCode.UNIMPLEMENTED),
        (NotImplementedError("no explainer"), 501, StatusCode.UNIMPLEMENTED),
    ],
)
def test_each_refusal_has_one_http_status_and_one_grpc_code(exc, status, code):
    assert refusal("/v2/models/m/infer", exc) == (status, {"error": str(exc)})
    assert grpc_code(exc) == code


def test_a_bug_is_no_refusal():
    assert grpc_code(RuntimeError("bug")) is None
    with pytest.raises(StopIteration):
        refusal("/v2/models/m/infer", RuntimeError("bug"))


def test_a_time_series_refusal_keeps_kserves_error_model_and_names_its_field():
    status, body = refusal("/v1/timeseries/forecast", Rejected("horizon", "horizon 0", "options.horizon"))
    error = {"code": "400", "message": "horizon 0", "param": "options.horizon", "type": "BadRequestError"}
    assert (status, body) == (400, {"error": error})
