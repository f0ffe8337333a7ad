"""The cached one call (v1 `:predict`, v2 `/infer`, no closes) answered without kserve's FastAPI stack.

Why: the transformer's own work per one call (decode the ask, the cached window, the answer) is tens
of microseconds; kserve's route around it (FastAPI, pydantic request and response models, its
timing middleware and histogram timers) and kserve-typed round trips of the predictor call were
most of the milliseconds it added (bench/one_call.py). Like the predictor's fast path
(predictor/fastpath.py, whose transport helpers it shares) this pure ASGI app sits behind the
Gatekeeper (token, body limit, request metrics) and runs the model's own `preprocess` (the same
checks, cache and window), then one lean v2 call (transformer.upstream `forecast`) and the same
answer (transformer.answer). Relayed calls (carrying closes), other content types, versions, query
strings, bodies kserve's pydantic model would coerce, and anything else fall through, body
replayed, to kserve's route.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from marketdata.cache import StaleDataError
from predictor.errors import error_body
from predictor.fastpath import FallThroughError, _read, _respond, json_infer_route, v2_request
from predictor.gatekeeper import replay_body
from predictor.kserve_seam import QUIET_STATUS, rejections
from transformer import answer, relay
from transformer.kserve_seam import refusal
from transformer.model import OneCallTransformer
from transformer.request import FIELDS
from transformer.upstream import UpstreamError

QUIET = tuple(kind for kind, _ in QUIET_STATUS)
V1_KEYS = frozenset(("instances", *FIELDS))  # anything else may be a structured CloudEvent: kserve's


def _headers(scope) -> dict[str, str]:
    """The request's headers as kserve hands them to a model (lower-case names)."""
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


class OneCallFastPath:
    """Pure ASGI in front of kserve's app; `lookup(name)` is kserve's model repository lookup."""

    def __init__(self, app, lookup: Callable[[str], object | None]) -> None:
        self.app, self.lookup = app, lookup

    async def __call__(self, scope, receive, send):
        route = json_infer_route(scope)
        if route is None or (route[0] and route[0].group(2)):  # a versioned call: kserve's route
            return await self.app(scope, receive, send)
        path, (v2, v1) = scope["path"], route
        body, complete = await _read(receive)
        try:
            model = self.lookup((v2 or v1).group(1))
            if not complete or not isinstance(model, OneCallTransformer) or not model.ready:
                raise FallThroughError
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise FallThroughError from None
            payload = v2_request(parsed, model.name, ("BYTES",)) if v2 else self._v1_body(parsed)
            status, content = await self._answer(model, payload, path, _headers(scope))
        except FallThroughError:
            return await self.app(scope, replay_body(body, receive), send)
        await _respond(send, status, content)

    @staticmethod
    def _v1_body(parsed) -> dict:
        if not isinstance(parsed, dict) or not parsed.keys() <= V1_KEYS or relay.carries_closes(parsed):
            raise FallThroughError
        return parsed

    @staticmethod
    async def _answer(model: OneCallTransformer, payload, path: str, headers: dict) -> tuple[int, bytes]:
        try:
            context = await model.preprocess(payload, headers)
            if isinstance(context, relay.Relay):
                raise FallThroughError  # a relayed call: kserve's route (preprocess had no side effect)
            values, version = await model.predictor.forecast(context.closes, headers)
            result = answer.answer_of(context, values, version or model.version)
        except QUIET as exc:
            status = next(code for kind, code in QUIET_STATUS if isinstance(exc, kind))
            rejections.info("rejected (%d): %s", status, exc)
            return status, orjson.dumps(error_body(path, status, str(exc), getattr(exc, "param", None)))
        except (StaleDataError, UpstreamError) as exc:
            status, body = refusal(exc)
            return status, orjson.dumps(body)
        if context.ask.v2:
            return 200, orjson.dumps(answer.v2_json(result, model.name, context.ask.request_id))
        return 200, orjson.dumps(answer.encode_v1(result))
