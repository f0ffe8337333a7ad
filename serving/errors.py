"""Refusals: their error classes, the one table of their statuses (HTTP, gRPC), their error shape.

A refusal is the client's or the moment's, not a bug: one line on `predictor.rejected` (kserve logs
a 31-line traceback), kserve's status and message. v1 and v2 answer `{"error": "<message>"}`;
KServe's time-series API its `ErrorResponse`, `{"error": {"code", "message", "param", "type"}}`.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from http import HTTPStatus

from grpc import StatusCode
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady

from serving.metrics import REJECTED

TIMESERIES_PREFIX = "/v1/timeseries/"
LOCKED = "model repository {} is disabled: the predictor follows its model source (the MLflow alias)"
rejections = logging.getLogger("predictor.rejected")  # one line per refused request; WARNING when quiet


class Rejected(InvalidInput):
    """A 400 with a reason label for the rejected-requests counter, and the request field it is
    about when one is (`param` of the time-series API's error object)."""

    def __init__(self, reason: str, message: str, param: str | None = None) -> None:
        REJECTED.labels(reason).inc()
        super().__init__(message)  # kserve keeps the message in .reason
        self.label, self.param = reason, param


class NotReadyError(ModelNotReady):
    """kserve's ModelNotReady plus the `.reason` its other errors have (and its gRPC interceptor
    reads): `detail` for anyone (a state), `private` (URIs, paths, upstream text) only for a caller
    holding the token (`disclosed`)."""

    PENDING = "No bundle has been loaded and self-tested yet."

    def __init__(self, model_name: str, detail: str = PENDING, private: str | None = None) -> None:
        super().__init__(model_name, detail)
        self.reason = self.error_msg
        self.private = ModelNotReady(model_name, private).error_msg if private else None


#: Whether the request being answered may read details (the REST guard sets it, serving.guard): only
#: when a token is configured and the request carries it. Without a configured token nobody can prove
#: who they are, so answers carry states only and the details go to the log.
DETAILS: ContextVar[bool] = ContextVar("forecaster_details", default=False)


def disclosed(exc: Exception) -> str:
    """A refusal's message for this request: its private text for a caller allowed details."""
    private = getattr(exc, "private", None)
    return private if private and DETAILS.get() else str(exc)


class VersionNotFound(ModelNotFound):
    """404 / NOT_FOUND: a version other than the one served (kserve answers 501 to any version)."""

    def __init__(self, model_name: str, version: str, served: str) -> None:
        super().__init__(model_name)
        self.reason = (
            f"model {model_name} has no version {version!r}: it serves version {served!r} "
            f"(the one its source points at; GET /v2/models/{model_name} names it)"
        )


class RepositoryLockedError(NotImplementedError):
    """501 / UNIMPLEMENTED: kserve's model repository load and unload (its unload cannot be undone)."""

    def __init__(self, action: str) -> None:
        self.reason = LOCKED.format(action)
        super().__init__(self.reason)


# Every refusal, by kind (first match): its HTTP status, its gRPC code. Anything else is a bug: kserve's.
REFUSALS: tuple[tuple[type[Exception], int, StatusCode], ...] = (
    (InvalidInput, 400, StatusCode.INVALID_ARGUMENT),
    (ModelNotFound, 404, StatusCode.NOT_FOUND),
    (ModelNotReady, 503, StatusCode.UNAVAILABLE),
    (NotImplementedError, 501, StatusCode.UNIMPLEMENTED),
)
REFUSED = tuple(kind for kind, _, _ in REFUSALS)


def refusal(path: str, exc: Exception) -> tuple[int, dict]:
    """(status, error object) answering a refusal of REFUSALS on `path`, logged in one line."""
    status = next(http for kind, http, _ in REFUSALS if isinstance(exc, kind))
    rejections.info("rejected (%d): %s", status, printable(str(getattr(exc, "private", None) or exc)))
    return status, error_body(path, status, disclosed(exc), getattr(exc, "param", None))


def printable(text: str) -> str:
    """`text` as UTF-8 can carry it: a lone surrogate (serving.text) written as a `\\udXXX` escape,
    so that no message quoting a request's string can fail to encode (a 500) or to log."""
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


def grpc_code(exc: Exception) -> StatusCode | None:
    return next((code for kind, _, code in REFUSALS if isinstance(exc, kind)), None)


def error_type(status: int) -> str:
    """`400 -> "BadRequestError"`, `404 -> "NotFoundError"`: the status phrase as kserve names them."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "Error"
    name = "".join(word for word in phrase.replace("-", " ").title().split())
    return name if name.endswith("Error") else name + "Error"


def error_body(path: str, status: int, message: str, param: str | None = None) -> dict:
    """The error object for a response to `path`: time-series shape under /v1/timeseries/, else v1/v2.
    Its text is always encodable (`printable`), whatever request string it quotes."""
    message, param = printable(message), printable(param) if param else param
    if path.startswith(TIMESERIES_PREFIX):
        code, kind = str(status), error_type(status)
        return {"error": {"code": code, "message": message, "param": param or "", "type": kind}}
    return {"error": message}


def _where(errors: list) -> str:
    first = errors[0] if errors else {}
    return "/".join(printable(str(p)) for p in first.get("loc", ())) or "body"


def body_error(errors: list) -> str:
    """The first pydantic validation error as one line naming its place, never the input itself."""
    first = errors[0] if errors else {}
    return f"invalid request body: {first.get('msg', 'invalid')} at {_where(errors)}"


def error_param(errors: list) -> str:
    """The field a validation error is about, without FastAPI's leading "body", dotted."""
    parts = _where(errors).split("/")
    return ".".join(parts[1:] if parts[0] == "body" else parts)
