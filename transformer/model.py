"""The kserve Model of the transformer: one call, no closes -> tomorrow's forecast and its provenance.

kserve's transformer path: preprocess (the ask), predict (`one_call`, the fast path's too: cached
closes, v2 to `--predictor_host`, the answer), postprocess (v1 or v2 as asked). Calls that carry
their closes are relayed (transformer.relay).
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
from transformer.relay import Relay
from transformer.request import Ask
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
        """kserve's check expects its own payloads; ours (an Ask) is checked where it is decoded."""
        return payload

    async def preprocess(
        self, payload: InferRequest | dict, headers: dict | None = None
    ) -> Ask | relay.Relay:
        if relay.carries_closes(payload):  # a direct call through the InferenceService's URL
            return relay.relay_of(payload)
        if isinstance(payload, InferRequest):
            return request.decode_v2(payload, self.settings.ticker)
        return request.decode_v1(payload, self.settings.ticker)

    async def predict(self, payload: Ask | Relay, headers: dict | None = None, response_headers=None):
        if isinstance(payload, Relay):
            return payload, await self.predictor.infer(payload.request, headers, relayed=True)
        return payload, await self.one_call(payload, headers)

    async def postprocess(self, result, headers: dict | None = None, response_headers=None):
        asked, body = result
        if isinstance(asked, Relay):
            return body if asked.v2 else relay.v1_answer(body)
        return answer.encode_v2(body, self.name, asked.request_id) if asked.v2 else answer.encode_v1(body)

    async def one_call(self, ask: Ask, headers: dict | None) -> dict:
        """The answer to `ask`: the cached closes up to its session (refreshed off the event loop when
        due), the predictor's forecast of them, the provenance."""
        ticker = self.settings.ticker
        answer.check_date(ask, self.clock().date())
        snapshot = self.market.cached(ticker, ask.as_of)
        if snapshot is None:  # a refresh is due: blocking I/O with retries, off the event loop
            snapshot = await asyncio.to_thread(self.market.get, ticker, ask.as_of)
        size, self.version = await self.predictor.window()
        context = answer.window(snapshot, ask, size, self.calendar, self.clock().date())
        values, version, calibration = await self.predictor.forecast(context.closes, headers)
        return answer.answer_of(context, values, version or self.version, calibration)
