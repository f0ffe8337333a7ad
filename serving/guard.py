"""The guard both servers put in front of kserve's app, and the answers to what that app refuses.

`Gatekeeper` is pure ASGI and knows nothing of kserve: it sees paths, headers and bytes, so it costs
no parsing on a refusal. `guard(app, settings)` installs it with the exception handlers that answer
refusals as quiet 4xx/503s in the surface's error shape (serving.errors).
"""

from __future__ import annotations

import hmac
import re
import time

import orjson
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve.errors import generic_exception_handler
from starlette.exceptions import HTTPException

from serving.asgi import replay_body, respond
from serving.errors import DETAILS, LOCKED, REFUSED, body_error, error_body, error_param, refusal, rejections
from serving.metrics import REJECTED, REQUEST_LATENCY, REQUESTS, exposition, init_route_series
from serving.text import lone_surrogate, refused

REPOSITORY = re.compile(r"^/v2/repository/models/[^/]+/(load|unload)$")
EXPLAIN = re.compile(r"^/v1/models/[^/]+:explain$")
ROUTES = (
    (re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/infer$"), "v2_infer"),
    (re.compile(r"^/v1/models/[^/]+:predict$"), "v1_predict"),
    (re.compile(r"^/v1/timeseries/forecast$"), "timeseries"),
)
NO_EXPLAIN = "this model has no explainer: POST /v1/models/{name}:predict or /v2/models/{name}/infer"


class Gatekeeper:
    """Pure ASGI, in front of kserve: serve /metrics; refuse repository calls, `:explain`,
    missing tokens and oversized bodies before anything is parsed; count and time inference."""

    def __init__(self, app, max_body_bytes: int, api_token: str | None = None) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes
        self.expected = f"Bearer {api_token}".encode() if api_token else None

    def _refusal(self, scope: dict, route: str | None, authorized: bool) -> tuple[int, str, str] | None:
        """(status, reason label, message) for requests refused on their path and headers."""
        path = scope["path"]
        if REPOSITORY.match(path):
            return 403, "repository", LOCKED.format(path.rsplit("/", 1)[1])
        if EXPLAIN.match(path):  # kserve would read and parse any body, unguarded, then answer 501
            return 404, "explain", NO_EXPLAIN
        if route and self.expected and not authorized:
            return 401, "unauthorized", "missing or wrong bearer token"
        return None

    def _authorized(self, headers: dict) -> bool:
        """A token is configured and the request carries it: inference, and details in readiness
        and refusal answers (serving.errors.DETAILS)."""
        given = headers.get(b"authorization", b"")
        return self.expected is not None and hmac.compare_digest(given, self.expected)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path == "/metrics":
            body, content_type = exposition()
            headers = [(b"content-type", content_type.encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            return await send({"type": "http.response.body", "body": body})
        route = next((name for pattern, name in ROUTES if pattern.match(path)), None)
        authorized = self._authorized(dict(scope["headers"])) if self.expected else False
        start, status = time.perf_counter(), 500
        details = DETAILS.set(authorized)
        try:
            refused = self._refusal(scope, route, authorized)
            if refused is None and route is not None:
                receive = await self._bounded(scope, receive)
                if receive is None:
                    limit = f"request body over the limit of {self.max_body_bytes} bytes"
                    refused = (413, "body_too_large", limit)
            if refused is not None:
                status, reason, message = refused
                REJECTED.labels(reason).inc()
                return await respond(send, status, orjson.dumps(error_body(path, status, message)))
            if route is None:
                return await self.app(scope, receive, send)

            async def send_status(message):
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            return await self.app(scope, receive, send_status)
        finally:
            DETAILS.reset(details)
            if route is not None:
                REQUESTS.labels(route, str(status)).inc()
                REQUEST_LATENCY.labels(route).observe(time.perf_counter() - start)

    async def _bounded(self, scope, receive):
        """`receive` if the body fits, else None. A declared length is judged before any byte is
        read; a chunked body is read up to the limit and replayed to the app."""
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            return receive if length.isdigit() and int(length) <= self.max_body_bytes else None
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return receive
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body_bytes:
                return None
            more = message.get("more_body", False)
        return replay_body(b"".join(chunks), receive)


def guard(app, settings) -> None:
    """The guard in front of kserve's `app` (token and body limit before parsing, request metrics)
    and refusals answered as quiet 4xx/503s; `settings` is a serving.cli.ServingSettings."""
    token = settings.api_token.get_secret_value() if settings.api_token else None
    app.add_middleware(Gatekeeper, max_body_bytes=settings.max_body_bytes, api_token=token)
    init_route_series()
    app.add_exception_handler(RequestValidationError, invalid_body)
    for kind in REFUSED:
        app.add_exception_handler(kind, rejected_request)


def _error(request, status: int, message: str, param: str | None = None, headers=None) -> JSONResponse:
    path = request.url.path if request is not None else ""
    return JSONResponse(error_body(path, status, message, param), status_code=status, headers=headers)


async def rejected_request(request, exc: Exception) -> JSONResponse:
    """A refusal (serving.errors.REFUSALS): its status and kserve's message, one log line."""
    status, body = refusal(request.url.path if request is not None else "", exc)
    return JSONResponse(body, status_code=status)


async def invalid_body(request, exc: RequestValidationError) -> JSONResponse:
    """A body that does not parse or validate is a 400 like every other bad request (FastAPI's 422
    echoes the input, and one holding NaN or Infinity failed to encode: a 500). It names the
    problem and its place, never the input, in the surface's one error shape."""
    place = lone_surrogate(exc.body) if exc.body is not None else None
    if place is not None:  # FastAPI's parser read it; a lone surrogate is named as such, not echoed
        return await rejected_request(request, refused(place))
    errors = list(exc.errors())
    REJECTED.labels("malformed").inc()
    rejections.info("rejected (400): %s", body_error(errors))
    return _error(request, 400, body_error(errors), error_param(errors))


async def http_error(request, exc: HTTPException) -> JSONResponse:
    """Unknown routes (404) and wrong methods (405) in the surface's error shape, not `{"detail"}`."""
    message = str(exc.detail)
    if exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
        allowed = (exc.headers or {}).get("Allow")
        message += f"; allowed: {allowed}" if allowed else ""
    elif exc.status_code == 404:
        message = f"no route {request.url.path}: see /openapi.json"
    return _error(request, exc.status_code, message, headers=exc.headers)


async def server_error(request, exc: Exception) -> JSONResponse:
    """A bug: kserve's traceback and 500, in the surface's error shape."""
    await generic_exception_handler(request, exc)
    return _error(request, 500, f"{type(exc).__name__} : {exc}")
