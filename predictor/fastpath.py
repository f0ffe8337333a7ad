"""The v2 `/infer` and v1 `:predict` JSON requests answered without kserve's FastAPI stack.

Why: kserve's route costs ~4x the floor's CPU per request (FastAPI routing, pydantic request and
response models, its timing middleware and three histogram timers around a ~100 µs model call).
Behind the guard and in front of kserve's app (serving.asgi), it answers what it can answer as
kserve's route would: a JSON body kserve's pydantic model accepts unchanged, for a ready forecast
model, decoded straight to float64 arrays by the model's own checks. Anything else (binary tensors,
CloudEvents, a query string, another version, a body pydantic would coerce) is kserve's route's.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from bundle.outputs import INPUT_DATATYPES
from predictor.batching import Batcher
from predictor.model import ForecastModel
from serving.asgi import FallThroughError, JsonFastPath
from serving.errors import REFUSED, refusal
from serving.v2 import checked_request


class FastPath(JsonFastPath):
    def __init__(self, app, lookup: Callable[[str], object | None], batcher: Batcher | None = None) -> None:
        super().__init__(app, lookup)
        self.batcher = batcher

    def _model(self, name: str, version: str | None) -> ForecastModel:
        model = self.lookup(name)
        if not isinstance(model, ForecastModel) or not model.ready:
            raise FallThroughError  # kserve's 404 / 503, or another kind of model
        served = model.served
        if served is None or (version is not None and version != served.version):
            raise FallThroughError  # the seam's VersionNotFound answer
        return model

    async def answer(self, scope, v2, v1, body) -> tuple[int, bytes]:
        model = self._model((v2 or v1).group(1), v2.group(2) if v2 else None)
        if v1 and (not isinstance(body, dict) or body.keys() != {"instances"}):
            raise FallThroughError  # anything else may be a structured CloudEvent
        payload = checked_request(body, INPUT_DATATYPES) if v2 else body
        try:
            decoded = model.preprocess(payload)
            if any(decoded.binary):
                raise FallThroughError  # binary tensor extension answer: kserve's encoder
            if self.batcher is not None:
                return 200, model.answer_json(decoded, await self.batcher.forecast(decoded))
            return 200, model.answer_json(decoded, decoded.forecast())
        except REFUSED as exc:
            status, error = refusal(scope["path"], exc)
            return status, orjson.dumps(error)
