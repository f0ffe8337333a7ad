"""The kserve Model of the transformer: one call, no closes -> tomorrow's forecast and its provenance.

kserve's transformer path: preprocess (decode the ask, closes from the cache, the predictor's
input), predict (v2 to kserve's `--predictor_host`, transformer.upstream), postprocess (the answer,
v1 or v2 as asked). Calls that carry their closes are relayed (transformer.relay).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import datetime

from kserve import Model
from kserve.protocol.infer_type import InferRequest

from marketdata.cache import MarketData, StaleDataError, utc_now
from marketdata.calendar import SessionCalendar
from transformer import answer, relay, request
from transformer.settings import TransformerSettings
from transformer.upstream import PredictorClient

log = logging.getLogger(__name__)


class OneCallTransformer(Model):
    def __init__(
        self,
        name: str,
        settings: TransformerSettings,
        market: MarketData,
        calendar: SessionCalendar,
        predictor: PredictorClient,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__(name)
        self.settings, self.market, self.calendar = settings, market, calendar
        self.predictor, self.clock = predictor, clock
        self.version: str | None = None

    def load(self) -> bool:
        """Ready at once; the first fetch runs in the background so the first request rarely waits."""
        threading.Thread(target=self._warm, name="marketdata-warmup", daemon=True).start()
        self.ready = True
        return True

    def _warm(self) -> None:
        try:
            self.market.get(self.settings.ticker)
        except StaleDataError as exc:
            log.warning("warm-up: %s", exc)

    def validate(self, payload):
        """kserve's check expects its own payloads; ours (a Context) is checked where it is built."""
        return payload

    async def preprocess(
        self, payload: InferRequest | dict, headers: dict | None = None
    ) -> answer.Context | relay.Relay:
        if relay.carries_closes(payload):  # a direct call through the InferenceService's URL
            return relay.relay_of(payload)
        ticker = self.settings.ticker
        if isinstance(payload, InferRequest):
            ask = request.decode_v2(payload, ticker)
        else:
            ask = request.decode_v1(payload, ticker)
        snapshot = self.market.cached(ticker, ask.as_of)
        if snapshot is None:  # a refresh is due: blocking I/O with retries, off the event loop
            snapshot = await asyncio.to_thread(self.market.get, ticker, ask.as_of)
        size, self.version = await self.predictor.window()
        return answer.window(snapshot, ask, size, self.calendar, self.clock().date())

    async def predict(
        self, payload: answer.Context | relay.Relay, headers: dict | None = None, response_headers=None
    ):
        if isinstance(payload, relay.Relay):
            return payload, await self.predictor.infer(payload.request, headers, relayed=True)
        response = await self.predictor.infer(answer.predictor_request(payload, self.name), headers)
        return payload, response

    async def postprocess(self, result, headers: dict | None = None, response_headers=None):
        context, response = result
        if isinstance(context, relay.Relay):
            return response if context.v2 else relay.v1_answer(response)
        body = answer.answer(context, response, self.version)
        if context.ask.v2:
            return answer.encode_v2(body, self.name, context.ask.request_id)
        return answer.encode_v1(body)
