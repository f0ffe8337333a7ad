"""The predictor as the transformer sees it: its window (model metadata, reused for a while), and the
errors of a call to it turned into answers that name the cause."""

from __future__ import annotations

import time

import httpx


class UpstreamError(RuntimeError):
    """The predictor could not answer: 503 when unreachable or not ready, 502 when it refused."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def from_http_error(exc: httpx.HTTPError, host: str) -> UpstreamError:
    if isinstance(exc, httpx.HTTPStatusError):
        code, text = exc.response.status_code, exc.response.text[:300]
        if code == 503:
            return UpstreamError(503, f"the predictor is not ready: {text}")
        if code == 401:
            return UpstreamError(502, "the predictor refused the transformer's token (set predictor_token)")
        return UpstreamError(502, f"the predictor answered {code}: {text}")
    return UpstreamError(503, f"the predictor at {host} is unreachable: {type(exc).__name__}: {exc}")


class PredictorWindow:
    """How many closes the served model takes, read from `GET /v2/models/{name}` every `ttl_s` at most
    (and again at once after the predictor refused a window: a new bundle may take another)."""

    def __init__(self, base_url: str, model: str, ttl_s: float, token: str | None, timeout_s: float) -> None:
        self.url = f"{base_url}/v2/models/{model}"
        self.ttl_s, self.timeout_s = ttl_s, timeout_s
        self.headers = {"authorization": f"Bearer {token}"} if token else {}
        self._client: httpx.AsyncClient | None = None
        self._cached: tuple[float, int, str | None] | None = None  # (expires, window, version)

    def forget(self) -> None:
        self._cached = None

    async def get(self) -> tuple[int, str | None]:
        """(window, version) of the model the predictor serves."""
        cached = self._cached
        if cached is not None and time.monotonic() < cached[0]:
            return cached[1], cached[2]
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
        try:
            response = await self._client.get(self.url, headers=self.headers)
            response.raise_for_status()
            meta = response.json()
        except httpx.HTTPError as exc:
            raise from_http_error(exc, self.url) from exc
        except ValueError as exc:
            raise UpstreamError(502, f"the predictor's metadata is not JSON: {exc}") from exc
        try:
            window = int(meta["inputs"][0]["shape"][1])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise UpstreamError(
                502, f"the predictor's metadata names no input window: {meta!r:.200}"
            ) from exc
        if window < 1:
            raise UpstreamError(503, "the predictor has no model loaded yet")
        versions = meta.get("versions") or [None]
        self._cached = (time.monotonic() + self.ttl_s, window, versions[0])
        return window, versions[0]
