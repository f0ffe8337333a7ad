"""The predictor as the transformer sees it (v2 REST to kserve's --predictor_host): its window (model
metadata, reused for a while), inference with the version that answered, and every failure turned
into an answer that names the cause.

kserve's own client drops a response's `model_version`; the answer must say which version answered
(an alias can move between two requests), so the call is made here, with the same v2 encoding.

Which failure is which: no answer in time, or none at all (refused, reset, closed before a byte) is
the transport's, a 503 (retried `retries` times at once, a timeout never); an answer that came but
cannot be used (not HTTP/1.1, cut short, not JSON, no forecast, a value that is no finite number) is
the predictor's, a 502 naming the problem, never retried. Every wait on the predictor, retries
included, is bounded by `timeout_s` (kserve's --predictor_request_timeout_seconds).
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from urllib.parse import urlsplit

import aiohttp
import numpy as np
import orjson
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.protocol.infer_type import InferRequest, InferResponse
from tenacity import AsyncRetrying, retry_if_exception_type, retry_if_not_exception_type, stop_after_attempt

from bundle.outputs import INPUT_NAME, MEAN
from transformer.wire import KeepAliveClient, MalformedAnswerError, WireError

FORWARDED = ("x-request-id", "x-b3-traceid")  # tracing headers kserve forwards too
TRANSPORT = (aiohttp.ClientConnectionError, WireError)  # refused, reset or closed: no answer came
# An answer came, broken: a bad status line or header (ClientResponseError), a body cut short (Payload)
MALFORMED = (MalformedAnswerError, aiohttp.ClientResponseError, aiohttp.ClientPayloadError)
JSON, BINARY = "application/json", "application/octet-stream"  # binary: the v2 tensor extension
EXCERPT = 160  # characters of the predictor's own text an error message quotes at most


class UpstreamError(RuntimeError):
    """The predictor could not answer: 503 when unreachable or not ready, 502 when it refused."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class BadAnswerError(UpstreamError):
    """The predictor answered, but not with something usable: a 502 naming what was wrong."""

    def __init__(self, problem: str) -> None:
        super().__init__(502, f"the predictor's answer is unusable: {problem}")


def excerpt(text: bytes | str, limit: int = EXCERPT) -> str:
    """The predictor's text as one bounded line: control characters escaped, at most `limit` characters."""
    if isinstance(text, bytes):
        text = text[: limit * 4].decode(errors="replace")
    line = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: limit + 1])
    return line if len(line) <= limit else f"{line[:limit]}..."


def _message(body: bytes) -> str | None:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return parsed.get("error") if isinstance(parsed, dict) and isinstance(parsed.get("error"), str) else None


def refused(code: int, body: bytes, relayed: bool = False) -> UpstreamError:
    """The predictor answered `code`: what the transformer answers instead."""
    text = excerpt(body)
    if relayed and 400 <= code < 500 and code != 401:  # the client's closes, refused: say why
        return UpstreamError(code, excerpt(_message(body) or text, 1000))
    if code == 503:
        return UpstreamError(503, f"the predictor is not ready: {text}")
    if code == 401:
        return UpstreamError(502, "the predictor refused the transformer's token (set predictor_token)")
    return UpstreamError(502, f"the predictor answered {code}: {text}")


def unreachable(exc: Exception, url: str) -> UpstreamError:
    return UpstreamError(
        503, f"the predictor at {url} is unreachable: {type(exc).__name__}: {excerpt(str(exc))}"
    )


def check_content_type(headers: dict, accepted: tuple[str, ...] = (JSON,)) -> None:
    """A 200 answer's content type is one the call expects (an HTML error page from a proxy is not)."""
    given = headers.get("content-type", "")  # both clients lower-case header names
    if given.split(";", 1)[0].strip().lower() not in accepted:
        raise BadAnswerError(
            f"its content type is {excerpt(given) or 'missing'!r}, not {' or '.join(accepted)}"
        )


def number(name: str, value: object) -> float:
    """An output's value as a finite float, or the problem named."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadAnswerError(f"output {excerpt(name)!r} holds {excerpt(repr(value), 40)}, not a number")
    result = float(value)  # orjson's integers fit 64 bits; a literal past float64 is not JSON to it
    if not math.isfinite(result):
        raise BadAnswerError(
            f"output {excerpt(name)!r} holds {excerpt(repr(value), 40)}, not a finite number"
        )
    return result


def read_outputs(content: bytes) -> tuple[dict[str, float], str | None, dict[str, str]]:
    """`({output: first value}, version, calibration)` of a v2 JSON answer to one window, every part
    checked; `calibration`: its string parameters named `calibration*` (none from an older predictor)."""
    try:
        answer = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise BadAnswerError(f"not JSON ({exc}): {excerpt(content, 60)}") from None
    outputs = answer.get("outputs") if isinstance(answer, dict) else None
    if not isinstance(outputs, list) or not outputs:
        raise BadAnswerError("it holds no outputs")
    values = {}
    for output in outputs:
        name = output.get("name") if isinstance(output, dict) else None
        if not isinstance(name, str):
            raise BadAnswerError(f"an output has no name: {excerpt(repr(output), 60)}")
        data = output.get("data")
        while isinstance(data, list) and data and isinstance(data[0], list):
            data = data[0]  # a [1, 1] output's first row
        if not isinstance(data, list) or not data:
            raise BadAnswerError(f"output {excerpt(name)!r} holds no data")
        values[name] = number(name, data[0])
    if MEAN not in values:
        raise BadAnswerError(f"it has no {MEAN!r} output (it has {excerpt(repr(sorted(values)))})")
    version, parameters = answer.get("model_version"), answer.get("parameters")
    calibration = {
        k: v for k, v in (parameters if isinstance(parameters, dict) else {}).items()
        if k.startswith("calibration") and isinstance(v, str)
    }  # fmt: skip
    return values, version if isinstance(version, str) else None, calibration


def checked_response(result: InferResponse) -> InferResponse:
    """A relayed answer whose every output is a non-empty array of finite numbers, one row per
    request row (what v1's answer and the client read); else the problem named."""
    if not result.outputs:
        raise BadAnswerError("it holds no outputs")
    rows = None
    for output in result.outputs:
        try:
            values = np.asarray(output.as_numpy())
        except Exception as exc:  # kserve's decoding raises several kinds
            raise BadAnswerError(f"output {excerpt(output.name)!r}: {excerpt(str(exc))}") from None
        if values.dtype.kind not in "fiu" or values.size == 0 or values.ndim == 0:
            raise BadAnswerError(
                f"output {excerpt(output.name)!r} holds no numbers ({values.dtype}, {values.shape})"
            )
        if not np.isfinite(values).all():
            raise BadAnswerError(f"output {excerpt(output.name)!r} holds a value that is not a finite number")
        if rows is not None and len(values) != rows:
            raise BadAnswerError(f"output {excerpt(output.name)!r} has {len(values)} rows, the first {rows}")
        rows = len(values)
    return result


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
        # (the calls are idempotent), timeouts and malformed answers never.
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
        under the policy and one deadline of `timeout_s` for every attempt together, then 503
        naming the predictor (no answer) or 502 naming what was wrong with the one that came."""
        try:
            async with asyncio.timeout(self.timeout_s):
                async for attempt in self._policy.copy():  # a copy per call: a policy keeps its state
                    with attempt:
                        if lean and self._wire is not None and body is not None:
                            return await self._wire.post(urlsplit(url).path, body, headers)
                        request = self.session().request(method, url, data=body, headers=headers)
                        async with request as response:
                            answered = {k.lower(): v for k, v in response.headers.items()}
                            return response.status, answered, await response.read()
        except TimeoutError as exc:  # aiohttp's own timeouts are TimeoutErrors too
            raise UpstreamError(
                503, f"the predictor at {url} did not answer within {self.timeout_s:g} s "
                     "(--predictor_request_timeout_seconds)",
            ) from exc  # fmt: skip
        except TRANSPORT as exc:
            raise unreachable(exc, url) from exc
        except MALFORMED as exc:
            message = exc.message if isinstance(exc, aiohttp.ClientResponseError) else str(exc)
            raise BadAnswerError(f"{type(exc).__name__}: {excerpt(' '.join(str(message).split()))}") from None
        raise AssertionError("unreachable: the policy returns or raises")

    async def window(self) -> tuple[int, str | None]:
        """(window, version) of the served model, from `GET /v2/models/{name}` every `ttl_s` at most
        (and at once after the predictor refused a window: a new bundle may take another)."""
        cached = self._window
        if cached is not None and time.monotonic() < cached[0]:
            return cached[1], cached[2]
        status, headers, body = await self._call("GET", self.model_url, None, self.auth)
        if status != 200:
            raise refused(status, body)
        check_content_type(headers)
        try:
            meta = orjson.loads(body)
            window = meta["inputs"][0]["shape"][1]
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
            raise BadAnswerError(f"its metadata names no input window: {excerpt(body, 80)}") from exc
        if isinstance(window, bool) or not isinstance(window, int):
            raise BadAnswerError(f"its metadata's input window is {excerpt(repr(window), 40)}, not a count")
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
        sent = self._sent(headers) | {"content-type": JSON}
        status, answered, content = await self._call("POST", f"{self.model_url}/infer", body, sent, lean=True)
        if status != 200:
            if status == 400:
                self._window = None
            raise refused(status, content)
        check_content_type(answered)
        return read_outputs(content)

    async def infer(
        self, request: InferRequest, headers: dict | None, relayed: bool = False
    ) -> InferResponse:
        """v2 inference; the predictor's token replaces the client's; a relayed request's refusal
        is the client's (its status and message pass through)."""
        body, json_length = request.to_rest()
        sent = self._sent(headers)
        if json_length:  # the binary tensor extension
            sent[INFERENCE_CONTENT_LENGTH_HEADER] = str(json_length)
            sent["content-type"] = BINARY
        else:
            body, sent["content-type"] = orjson.dumps(body), JSON
        status, answered, content = await self._call("POST", f"{self.model_url}/infer", body, sent)
        if status != 200:
            if status == 400 and not relayed:
                self._window = None
            raise refused(status, content, relayed)
        check_content_type(answered, (JSON, BINARY))
        declared = answered.get(INFERENCE_CONTENT_LENGTH_HEADER, str(len(content)))
        if not declared.isdigit() or int(declared) > len(content):
            raise BadAnswerError(f"its {INFERENCE_CONTENT_LENGTH_HEADER} is {excerpt(declared, 40)!r}")
        length = int(declared)
        try:
            head = orjson.loads(content[:length])
        except orjson.JSONDecodeError as exc:
            raise BadAnswerError(f"not JSON ({exc}): {excerpt(content[:length], 60)}") from None
        try:
            result = InferResponse.from_bytes(content, length)
        except KeyError as exc:
            raise BadAnswerError(f"it lacks the field {excerpt(str(exc), 40)}") from None
        except Exception as exc:  # kserve's decoding raises several kinds: the predictor's, never a crash
            raise BadAnswerError(f"{type(exc).__name__}: {excerpt(str(exc))}") from None
        version = head.get("model_version") if isinstance(head, dict) else None
        result.model_version = version if isinstance(version, str) else None
        return checked_response(result)
