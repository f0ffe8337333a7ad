"""ASGI plumbing of the guard and both fast paths: reading a body (and replaying it to the app
behind), writing a JSON answer, and the fast paths' frame: which requests they may answer."""

from __future__ import annotations

import re
from collections.abc import Callable

import orjson

V2 = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")
V1 = re.compile(r"^/v1/models/([^/]+):predict$")


class FallThroughError(Exception):
    """This request is kserve's to answer."""


def json_content(headers: list) -> bool:
    """JSON as kserve's routes read it: no content type or `application/json`, no binary tensor
    extension header and no binary CloudEvent (`ce-*`) header."""
    for key, value in headers:
        if key == b"content-type":
            if value.split(b";", 1)[0].strip().lower() != b"application/json":
                return False
        elif key.startswith(b"ce-") or key == b"inference-header-content-length":
            return False
    return True


def json_infer_route(scope) -> tuple[re.Match | None, re.Match | None] | None:
    """(v2 match, v1 match) of a JSON POST to an infer route with no query string (one of the two
    is set), else None: the requests a fast path may answer; everything else is kserve's."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope.get("query_string"):
        return None
    v2 = V2.match(scope["path"])
    v1 = None if v2 else V1.match(scope["path"])
    if not (v2 or v1) or not json_content(scope["headers"]):
        return None
    return v2, v1


async def read_body(receive) -> tuple[bytes, bool]:
    """(body, complete): complete is False when the client went away mid-body."""
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks), True


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


async def respond(send, status: int, payload: bytes) -> None:
    """A JSON answer, `payload` its bytes."""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class JsonFastPath:
    """Pure ASGI in front of kserve's app (`lookup(name)`: its model repository's). A JSON infer
    request, read whole and parsed, is `answer`ed here unless that raises FallThroughError; then,
    like every other request, it goes on to kserve's app, its body replayed."""

    def __init__(self, app, lookup: Callable[[str], object | None]) -> None:
        self.app, self.lookup = app, lookup

    async def answer(self, scope, v2: re.Match | None, v1: re.Match | None, body) -> tuple[int, bytes]:
        """(status, JSON bytes) for the parsed `body` of this route, or FallThroughError."""
        raise NotImplementedError

    async def __call__(self, scope, receive, send):
        route = json_infer_route(scope)
        if route is None:
            return await self.app(scope, receive, send)
        body, complete = await read_body(receive)
        try:
            if not complete:
                raise FallThroughError
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:  # NaN literals, lone surrogates (serving.text) and other
                raise FallThroughError from None  # non-JSON: kserve's route words its refusal
            status, answer = await self.answer(scope, *route, parsed)
        except FallThroughError:
            return await self.app(scope, replay_body(body, receive), send)
        await self.respond(send, status, answer)

    respond = staticmethod(respond)  # the fast path's one writer
