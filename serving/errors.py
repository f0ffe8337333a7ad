"""One error shape per surface, whoever answers (the guard, a route, FastAPI's router, a parse error).

The v1 and v2 protocols answer `{"error": "<message>"}` (the Open Inference Protocol's error
object, and what kserve's own handlers write). KServe's time-series API answers its documented
`ErrorResponse`: `{"error": {"code", "message", "param", "type"}}` (kserve.protocol.rest.timeseries
.types), with `type` named after the status as kserve's time-series errors are ("BadRequestError").
"""

from __future__ import annotations

from http import HTTPStatus

TIMESERIES_PREFIX = "/v1/timeseries/"


def error_type(status: int) -> str:
    """`400 -> "BadRequestError"`, `404 -> "NotFoundError"`: the status phrase as kserve names them."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "Error"
    name = "".join(word for word in phrase.replace("-", " ").title().split())
    return name if name.endswith("Error") else name + "Error"


def error_body(path: str, status: int, message: str, param: str | None = None) -> dict:
    """The error object for a response to `path`: time-series shape under /v1/timeseries/, else v1/v2."""
    if path.startswith(TIMESERIES_PREFIX):
        code, kind = str(status), error_type(status)
        return {"error": {"code": code, "message": message, "param": param or "", "type": kind}}
    return {"error": message}
