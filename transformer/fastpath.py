"""The cached one call (v1 `:predict`, v2 `/infer`, no closes) answered without kserve's FastAPI stack.

Why: the transformer's own work per one call is tens of microseconds; kserve's route around it
(FastAPI, pydantic models, its timing middleware and timers) was most of the milliseconds it added
(bench/one_call.py). On the predictor fast path's frame (serving.asgi), it runs the model's own
checks and `one_call`, answering as kserve's route does; relayed calls (carrying closes), versions
and bodies kserve's pydantic model would coerce fall through to kserve's route.
"""

from __future__ import annotations

import orjson

from marketdata.cache import StaleDataError
from serving.asgi import FallThroughError, JsonFastPath
from serving.errors import REFUSED, refusal
from serving.v2 import checked_request, v2_answer
from transformer import answer, relay, request
from transformer.model import OneCallTransformer
from transformer.request import FIELDS
from transformer.upstream import UpstreamError

V1_KEYS = frozenset(("instances", *FIELDS))  # anything else may be a structured CloudEvent: kserve's


class OneCallFastPath(JsonFastPath):
    async def answer(self, scope, v2, v1, body) -> tuple[int, bytes]:
        model = self.lookup((v2 or v1).group(1))
        if (v2 and v2.group(2)) or not isinstance(model, OneCallTransformer) or not model.ready:
            raise FallThroughError  # a versioned call, or not the one-call model: kserve's route
        if v1 and (not isinstance(body, dict) or not body.keys() <= V1_KEYS):
            raise FallThroughError
        payload = checked_request(body, ("BYTES",)) if v2 else body
        if relay.carries_closes(payload):
            raise FallThroughError  # a relayed call: kserve's route
        ticker = model.settings.ticker
        try:
            ask = request.decode_v2(payload, ticker) if v2 else request.decode_v1(payload, ticker)
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}  # as kserve's
            result = await model.one_call(ask, headers)
        except REFUSED as exc:
            status, error = refusal(scope["path"], exc)
            return status, orjson.dumps(error)
        except (StaleDataError, UpstreamError) as exc:
            status, error = answer.refusal(exc)
            return status, orjson.dumps(error)
        if ask.v2:
            return 200, v2_answer(answer.encode_v2(result, model.name, ask.request_id), nulls=True)
        return 200, orjson.dumps(answer.encode_v1(result))
