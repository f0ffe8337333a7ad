"""The predictor as the transformer sees it (v2 REST to kserve's --predictor_host): its window (model
metadata, reused for a while), inference with the version that answered, and every failure turned
into an answer that names the cause.

kserve's own client drops a response's `model_version`; the answer must say which version answered
(an alias can move between two requests), so the call is made here, with the same v2 encoding.
"""

from __future__ import annotations

import time
import uuid
from urllib.parse import urlsplit

import aiohttp
import numpy as np
import orjson
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.protocol.infer_type import InferRequest, InferResponse
from tenacity import AsyncRetrying, retry_if_exception_type, retry_if_not_exception_type, stop_after_attempt

from bundle.outputs import INPUT_NAME
from transformer.wire import KeepAliveClient, WireError

FORWARDED = ("x-request-id", "x-b3-traceid")  # tracing headers kserve forwards too
TRANSPORT = (aiohttp.ClientConnectionError, WireError)  # refused, reset, closed or malformed exchanges


class UpstreamError(RuntimeError):
    """The predictor could not answer: 503 when unreachable or not ready, 502 when it refused."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _message(body: bytes) -> str | None:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return parsed.get("error") if isinstance(parsed, dict) and isinstance(parsed.get("error"), str) else None


def refused(code: int, body: bytes, relayed: bool = False) -> UpstreamError:
    """The predictor answered `code`: what the transformer answers instead."""
    text = body[:300].decode(errors="replace")
    if relayed and 400 <= code < 500 and code != 401:  # the client's closes, refused: say why
        return UpstreamError(code, _message(body) or text)
    if code == 503:
        return UpstreamError(503, f"the predictor is not ready: {text}")
    if code == 401:
        return UpstreamError(502, "the predictor refused the transformer's token (set predictor_token)")
    return UpstreamError(502, f"the predictor answered {code}: {text}")


def unreachable(exc: Exception, url: str) -> UpstreamError:
    return UpstreamError(503, f"the predictor at {url} is unreachable: {type(exc).__name__}: {exc}")


class PredictorClient:
    """aiohttp (a kserve dependency; a third of httpx's CPU per call) for metadata, relays and
    https; the cached one call's request on transformer.wire's lean keep-alive connections over
    plain http, a third of aiohttp's CPU again (BENCHMARKS.md, one-call run 3)."""

    def __init__(
        self, base_url: str, model: str, token: str | None, timeout_s: float, retries: int, ttl_s: float
    ) -> None:
        self.model_url = f"{base_url}/v2/models/{model}"
        self.ttl_s, self.timeout_s = ttl_s, timeout_s
        self.auth = {"authorization": f"Bearer {token}"} if token else {}
        self._session: aiohttp.ClientSession | None = None
        self._window: tuple[float, int, str | None] | None = None  # (expires, window, version)
        self._wire = KeepAliveClient(base_url, timeout_s) if base_url.startswith("http://") else None
        # One policy for a call to the predictor: transport failures retried `retries` times at once
        # (the calls are idempotent), timeouts never (some of aiohttp's are connection errors too).
        retried = retry_if_exception_type(TRANSPORT) & retry_if_not_exception_type(TimeoutError)
        stop = stop_after_attempt(retries + 1)  # off with no retries (kserve's default): ~10 us less a call
        self._policy = AsyncRetrying(stop=stop, retry=retried, reraise=True, enabled=retries > 0)

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:  # made in the server's event loop
            timeout = aiohttp.ClientTimeout(total=self.timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def _call(
        self, method: str, url: str, body: bytes | None, headers: dict, lean: bool = False
    ) -> tuple[int, dict, bytes]:
        """(status, headers, body), on the lean client if `lean` and there is one, else on aiohttp;
        under the policy, then 503 naming the predictor."""
        try:  # a copy of the policy per call: a policy keeps its state while it runs
            async for attempt in self._policy.copy():
                with attempt:
                    if lean and self._wire is not None and body is not None:
                        return await self._wire.post(urlsplit(url).path, body, headers)
                    async with self.session().request(method, url, data=body, headers=headers) as response:
                        return response.status, dict(response.headers), await response.read()
        except (*TRANSPORT, TimeoutError) as exc:
            raise unreachable(exc, url) from exc
        raise AssertionError("unreachable: the policy returns or raises")

    async def window(self) -> tuple[int, str | None]:
        """(window, version) of the served model, from `GET /v2/models/{name}` every `ttl_s` at most
        (and at once after the predictor refused a window: a new bundle may take another)."""
        cached = self._window
        if cached is not None and time.monotonic() < cached[0]:
            return cached[1], cached[2]
        status, _, body = await self._call("GET", self.model_url, None, self.auth)
        if status != 200:
            raise refused(status, body)
        try:
            meta = orjson.loads(body)
            window = int(meta["inputs"][0]["shape"][1])
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise UpstreamError(
                502, f"the predictor's metadata names no input window: {body[:200]!r}"
            ) from exc
        if window < 1:
            raise UpstreamError(503, "the predictor has no model loaded yet")
        versions = meta.get("versions") or [None]
        self._window = (time.monotonic() + self.ttl_s, window, versions[0])
        return window, versions[0]

    def _sent(self, headers: dict | None) -> dict:
        return {k: v for k, v in (headers or {}).items() if k.lower() in FORWARDED} | self.auth

    async def forecast(
        self, closes: np.ndarray, headers: dict | None
    ) -> tuple[dict[str, float], str | None, dict[str, str]]:
        """`({output: value}, version, calibration)` for one window: the one call's own request to the
        predictor, its v2 JSON written once with orjson and its answer read with orjson (no
        InferRequest / InferResponse round trips), on the session's keep-alive connections.
        `calibration`: the predictor's response parameters saying which calibration served the bounds
        (`calibration`, `calibration_reason`, `calibration_state_as_of`; none from an older predictor)."""
        rows = [closes.tolist()]
        tensor = {"name": INPUT_NAME, "shape": [1, len(closes)], "datatype": "FP64", "data": rows}
        body = orjson.dumps({"id": uuid.uuid4().hex, "inputs": [tensor]})
        sent = self._sent(headers) | {"content-type": "application/json"}
        status, _, content = await self._call("POST", f"{self.model_url}/infer", body, sent, lean=True)
        if status != 200:
            if status == 400:
                self._window = None
            raise refused(status, content)
        try:
            answer = orjson.loads(content)
            values = {o["name"]: float(o["data"][0]) for o in answer["outputs"]}
            version = answer.get("model_version")
            parameters = answer.get("parameters") or {}
            calibration = {
                k: v for k, v in parameters.items() if k.startswith("calibration") and isinstance(v, str)
            }
        except Exception as exc:  # a malformed answer is the predictor's failure, never a crash here
            raise UpstreamError(502, f"the predictor's answer cannot be read: {exc}") from exc
        return values, version if isinstance(version, str) else None, calibration

    async def infer(
        self, request: InferRequest, headers: dict | None, relayed: bool = False
    ) -> InferResponse:
        """v2 inference; the predictor's token replaces the client's; a relayed request's refusal
        is the client's (its status and message pass through)."""
        body, json_length = request.to_rest()
        sent = self._sent(headers)
        if json_length:  # the binary tensor extension
            sent[INFERENCE_CONTENT_LENGTH_HEADER] = str(json_length)
            sent["content-type"] = "application/octet-stream"
        else:
            body, sent["content-type"] = orjson.dumps(body), "application/json"
        status, answered, content = await self._call("POST", f"{self.model_url}/infer", body, sent)
        if status != 200:
            if status == 400 and not relayed:
                self._window = None
            raise refused(status, content, relayed)
        length = int(answered.get(INFERENCE_CONTENT_LENGTH_HEADER, len(content)))
        try:
            result = InferResponse.from_bytes(content, length)
            result.model_version = orjson.loads(content[:length]).get("model_version")
        except Exception as exc:  # a malformed answer is the predictor's failure, never a crash here
            raise UpstreamError(502, f"the predictor's answer cannot be read: {exc}") from exc
        return result
