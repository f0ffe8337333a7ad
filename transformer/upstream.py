"""The predictor as the transformer sees it (v2 REST to kserve's --predictor_host): its window (model
metadata, reused for a while), inference with the version that answered, and every failure turned
into an answer that names the cause.

kserve's own client drops a response's `model_version`; the answer must say which version answered
(an alias can move between two requests), so the call is made here, with the same v2 encoding.
"""

from __future__ import annotations

import time

import httpx
import orjson
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.protocol.infer_type import InferRequest, InferResponse

FORWARDED = ("x-request-id", "x-b3-traceid")  # tracing headers kserve forwards too


class UpstreamError(RuntimeError):
    """The predictor could not answer: 503 when unreachable or not ready, 502 when it refused."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _message(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), str) else None


def from_http_error(exc: httpx.HTTPError, url: str, relayed: bool = False) -> UpstreamError:
    if isinstance(exc, httpx.HTTPStatusError):
        code, text = exc.response.status_code, exc.response.text[:300]
        if relayed and 400 <= code < 500 and code != 401:  # the client's closes, refused: say why
            return UpstreamError(code, _message(exc.response) or text)
        if code == 503:
            return UpstreamError(503, f"the predictor is not ready: {text}")
        if code == 401:
            return UpstreamError(502, "the predictor refused the transformer's token (set predictor_token)")
        return UpstreamError(502, f"the predictor answered {code}: {text}")
    return UpstreamError(503, f"the predictor at {url} is unreachable: {type(exc).__name__}: {exc}")


class PredictorClient:
    def __init__(
        self, base_url: str, model: str, token: str | None, timeout_s: float, retries: int, ttl_s: float
    ) -> None:
        self.model_url = f"{base_url}/v2/models/{model}"
        self.ttl_s, self.timeout_s, self.retries = ttl_s, timeout_s, retries
        self.auth = {"authorization": f"Bearer {token}"} if token else {}
        self._client: httpx.AsyncClient | None = None
        self._window: tuple[float, int, str | None] | None = None  # (expires, window, version)

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:  # created in the server's event loop, on first use
            transport = httpx.AsyncHTTPTransport(retries=self.retries)  # connection failures only
            self._client = httpx.AsyncClient(timeout=self.timeout_s, transport=transport)
        return self._client

    async def window(self) -> tuple[int, str | None]:
        """(window, version) of the served model, from `GET /v2/models/{name}` every `ttl_s` at most
        (and at once after the predictor refused a window: a new bundle may take another)."""
        cached = self._window
        if cached is not None and time.monotonic() < cached[0]:
            return cached[1], cached[2]
        try:
            response = await self.client.get(self.model_url, headers=self.auth)
            response.raise_for_status()
            meta = response.json()
        except httpx.HTTPError as exc:
            raise from_http_error(exc, self.model_url) from exc
        except ValueError as exc:
            raise UpstreamError(502, f"the predictor's metadata is not JSON: {exc}") from exc
        try:
            window = int(meta["inputs"][0]["shape"][1])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            detail = repr(meta)[:200]
            raise UpstreamError(502, f"the predictor's metadata names no input window: {detail}") from exc
        if window < 1:
            raise UpstreamError(503, "the predictor has no model loaded yet")
        versions = meta.get("versions") or [None]
        self._window = (time.monotonic() + self.ttl_s, window, versions[0])
        return window, versions[0]

    async def infer(
        self, request: InferRequest, headers: dict | None, relayed: bool = False
    ) -> InferResponse:
        """v2 inference; the predictor's token replaces the client's; a relayed request's refusal
        is the client's (its status and message pass through)."""
        body, json_length = request.to_rest()
        sent = {k: v for k, v in (headers or {}).items() if k.lower() in FORWARDED} | self.auth
        if json_length:  # the binary tensor extension
            sent |= {
                INFERENCE_CONTENT_LENGTH_HEADER: str(json_length),
                "content-type": "application/octet-stream",
            }
        else:
            body, sent["content-type"] = orjson.dumps(body), "application/json"
        try:
            response = await self.client.post(f"{self.model_url}/infer", content=body, headers=sent)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code == 400 and not relayed:
                self._window = None
            raise from_http_error(exc, self.model_url, relayed) from exc
        content = response.content
        length = int(response.headers.get(INFERENCE_CONTENT_LENGTH_HEADER, len(content)))
        try:
            result = InferResponse.from_bytes(content, length)
            result.model_version = orjson.loads(content[:length]).get("model_version")
        except Exception as exc:  # a malformed answer is the predictor's failure, never a crash here
            raise UpstreamError(502, f"the predictor's answer cannot be read: {exc}") from exc
        return result
