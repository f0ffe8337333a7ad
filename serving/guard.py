"""Pure ASGI guard in front of kserve's app: /metrics, refusals, token, body limit, request metrics.

It knows nothing of kserve: it sees paths, headers and bytes, so it costs no parsing on a refusal.
"""

from __future__ import annotations

import hmac
import re
import time

import orjson

from predictor.errors import error_body
from predictor.metrics import REJECTED, REQUEST_LATENCY, REQUESTS, exposition

REPOSITORY = re.compile(r"^/v2/repository/models/[^/]+/(load|unload)$")
EXPLAIN = re.compile(r"^/v1/models/[^/]+:explain$")
ROUTES = (
    (re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/infer$"), "v2_infer"),
    (re.compile(r"^/v1/models/[^/]+:predict$"), "v1_predict"),
    (re.compile(r"^/v1/timeseries/forecast$"), "timeseries"),
)
LOCKED = "model repository {} is disabled: the predictor follows its model source (the MLflow alias)"
NO_EXPLAIN = "this model has no explainer: POST /v1/models/{name}:predict or /v2/models/{name}/infer"


def _route(path: str) -> str | None:
    for pattern, name in ROUTES:
        if pattern.match(path):
            return name
    return None


async def _json(send, status: int, body: dict) -> None:
    payload = orjson.dumps(body)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def replay_body(body: bytes, receive):
    """An ASGI `receive` that hands the app `body` (already read) once, then the real channel."""
    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


class Gatekeeper:
    """Pure ASGI, in front of kserve: serve /metrics; refuse repository calls, `:explain`,
    missing tokens and oversized bodies before anything is parsed; count and time inference."""

    def __init__(self, app, max_body_bytes: int, api_token: str | None = None) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes
        self.expected = f"Bearer {api_token}".encode() if api_token else None

    def _refusal(self, scope: dict, route: str | None, headers: dict) -> tuple[int, str, str] | None:
        """(status, reason label, message) for requests refused on their path and headers."""
        path = scope["path"]
        if REPOSITORY.match(path):
            return 403, "repository", LOCKED.format(path.rsplit("/", 1)[1])
        if EXPLAIN.match(path):  # kserve would read and parse any body, unguarded, then answer 501
            return 404, "explain", NO_EXPLAIN
        if (
            route
            and self.expected
            and not hmac.compare_digest(headers.get(b"authorization", b""), self.expected)
        ):
            return 401, "unauthorized", "missing or wrong bearer token"
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path == "/metrics":
            body, content_type = exposition()
            headers = [(b"content-type", content_type.encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            return await send({"type": "http.response.body", "body": body})
        route = _route(path)
        start, status = time.perf_counter(), 500
        try:
            refusal = self._refusal(scope, route, dict(scope["headers"]))
            if refusal is None and route is not None:
                receive = await self._bounded(scope, receive)
                if receive is None:
                    refusal = (
                        413,
                        "body_too_large",
                        f"request body over the limit of {self.max_body_bytes} bytes",
                    )
            if refusal is not None:
                status, reason, message = refusal
                REJECTED.labels(reason).inc()
                return await _json(send, status, error_body(path, status, message))
            if route is None:
                return await self.app(scope, receive, send)

            async def send_status(message):
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            return await self.app(scope, receive, send_status)
        finally:
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
