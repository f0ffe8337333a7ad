"""The v2 `/infer` and v1 `:predict` JSON requests answered without kserve's FastAPI stack.

Why: kserve's route costs ~4x the floor's CPU per request (FastAPI routing, pydantic request and
response models, its timing middleware and three histogram timers around a ~100 µs model call).
This pure ASGI app sits behind the Gatekeeper (token, body limit and request metrics stay there)
and in front of kserve's app. It answers only what it can answer exactly as kserve's route would:
a JSON body that kserve's pydantic `InferenceRequest` would accept unchanged, for a forecast model
that is ready, looked up by name in kserve's model repository on every request. The model's own
`preprocess` (codecs validation, same messages and rejection counters) and `predict` (inference
metrics) run; only the transport around them is new. Anything else (binary tensor extension,
CloudEvents, another content type, a query string, an unknown or not-ready model, another version,
a body orjson cannot read or whose shape pydantic would coerce or refuse, binary outputs) falls
through, body replayed, to kserve's route, which gives its usual answer.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable

import numpy as np
import orjson
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse, RequestedOutput

from bundle.outputs import INPUT_DATATYPES
from predictor.batching import Batcher
from predictor.errors import error_body
from predictor.gatekeeper import replay_body
from predictor.kserve_seam import QUIET_STATUS, json_answer, rejections
from predictor.model import Decoded, ForecastModel

V2 = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")
V1 = re.compile(r"^/v1/models/([^/]+):predict$")
JSON_HEADERS = [(b"content-type", b"application/json")]
QUIET = tuple(kind for kind, _ in QUIET_STATUS)  # answered as kserve_seam.rejected_request answers them

PARAMETER_TYPES = (str, bool, int, float)  # kserve's InferParameter: Strict{Float,Int,Bool} | str
INPUT_KEYS = frozenset(("name", "shape", "datatype", "parameters", "data"))
OUTPUT_KEYS = frozenset(("name", "parameters"))
REQUEST_KEYS = frozenset(("id", "parameters", "inputs", "outputs"))


class FallThroughError(Exception):
    """This request is kserve's to answer."""


def _parameters(value) -> dict | None:
    """A `parameters` object exactly as pydantic's `Parameters` would keep it, else FallThroughError."""
    if value is None:
        return None
    if not isinstance(value, dict) or not all(type(v) in PARAMETER_TYPES for v in value.values()):
        raise FallThroughError
    return value


def _input(item, datatypes: tuple[str, ...] = INPUT_DATATYPES) -> InferInput:
    """One `inputs` entry as `InferRequest.from_inference_request` builds it, when pydantic's
    `RequestInput` would accept it without coercion and its datatype is one of `datatypes`."""
    if not isinstance(item, dict) or not item.keys() <= INPUT_KEYS:
        raise FallThroughError
    name, shape, datatype, data = item.get("name"), item.get("shape"), item.get("datatype"), item.get("data")
    if type(name) is not str or datatype not in datatypes or type(data) is not list:
        raise FallThroughError  # other datatypes: kserve's checks word those refusals (case, FP16, ...)
    if type(shape) is not list or not all(type(d) is int for d in shape):
        raise FallThroughError
    parameters = _parameters(item.get("parameters"))
    return InferInput(name, shape, datatype, data, {} if parameters is None else parameters)


def v2_request(body, model_name: str, datatypes: tuple[str, ...] = INPUT_DATATYPES) -> InferRequest:
    """The `InferRequest` kserve's route would build from this JSON body, or FallThroughError."""
    if not isinstance(body, dict) or not body.keys() <= REQUEST_KEYS or type(body.get("inputs")) is not list:
        raise FallThroughError
    request_id = body.get("id")
    if request_id is not None and type(request_id) is not str:
        raise FallThroughError
    inputs = [_input(item, datatypes) for item in body["inputs"]]
    outputs = body.get("outputs")
    wanted = None
    if outputs is not None:
        if type(outputs) is not list:
            raise FallThroughError
        wanted = []
        for out in outputs:
            if not isinstance(out, dict) or not out.keys() <= OUTPUT_KEYS or type(out.get("name")) is not str:
                raise FallThroughError
            parameters = _parameters(out.get("parameters"))
            wanted.append(RequestedOutput(out["name"], {} if parameters is None else parameters))
        wanted = wanted or None  # kserve keeps `[]` as None
    parameters = _parameters(body.get("parameters"))
    return InferRequest(model_name, inputs, request_id, parameters=parameters, request_outputs=wanted)


def v2_answer(response: InferResponse) -> bytes:
    """The bytes kserve's route writes for this JSON answer (`InferResponse.to_rest`, then
    kserve_seam.json_answer), from the model's numpy outputs without kserve's per-value copies;
    through kserve's own encoder for anything the forecast model does not write."""
    plain = not response.parameters and all(
        not out.parameters and isinstance(out.data, np.ndarray) and out.datatype == "FP64"
        for out in response.outputs
    )
    if not plain:
        return json_answer(response.to_rest()[0])
    outputs = [
        {"name": out.name, "shape": out.shape, "datatype": out.datatype, "data": out.data.tolist()}
        for out in response.outputs
    ]
    fields = {"model_name": response.model_name, "model_version": response.model_version, "id": response.id}
    return orjson.dumps({**{k: v for k, v in fields.items() if v is not None}, "outputs": outputs})


def _json_content(headers: list) -> bool:
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
    if not (v2 or v1) or not _json_content(scope["headers"]):
        return None
    return v2, v1


async def _read(receive) -> tuple[bytes, bool]:
    """(body, complete): complete is False when the client went away mid-body."""
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), False
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks), True


async def _respond(send, status: int, payload: bytes) -> None:
    headers = [*JSON_HEADERS, (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _call(method, *args):
    result = method(*args)
    return await result if inspect.isawaitable(result) else result


class FastPath:
    """Pure ASGI in front of kserve's app; `lookup(name)` is kserve's model repository lookup."""

    def __init__(self, app, lookup: Callable[[str], object | None], batcher: Batcher | None = None) -> None:
        self.app, self.lookup, self.batcher = app, lookup, batcher

    def _model(self, name: str, version: str | None) -> ForecastModel:
        model = self.lookup(name)
        if not isinstance(model, ForecastModel) or not model.ready:
            raise FallThroughError  # kserve's 404 / 503, or another kind of model
        served = model.served
        if served is None or (version is not None and version != served.version):
            raise FallThroughError  # kserve_seam's VersionNotFound answer
        return model

    async def __call__(self, scope, receive, send):
        route = json_infer_route(scope)
        if route is None:
            return await self.app(scope, receive, send)
        path, (v2, v1) = scope["path"], route
        body, complete = await _read(receive)
        try:
            if not complete:
                raise FallThroughError
            name = (v2 or v1).group(1)
            model = self._model(name, v2.group(2) if v2 else None)
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise FallThroughError from None  # NaN literals and other non-JSON: kserve's parser words it
            payload = v2_request(parsed, name) if v2 else self._v1_body(parsed)
            status, answer = await self._answer(model, payload, path)
        except FallThroughError:
            return await self.app(scope, replay_body(body, receive), send)
        await _respond(send, status, answer)

    @staticmethod
    def _v1_body(parsed) -> dict:
        """A v1 body holding `instances` only (anything else may be a structured CloudEvent)."""
        if not isinstance(parsed, dict) or parsed.keys() != {"instances"}:
            raise FallThroughError
        return parsed

    async def _answer(self, model: ForecastModel, payload, path: str) -> tuple[int, bytes]:
        try:
            decoded: Decoded = await _call(model.preprocess, payload, None)
            if any(decoded.binary):
                raise FallThroughError  # binary tensor extension answer: kserve's encoder
            if self.batcher is not None and isinstance(decoded, Decoded):
                response = model.answer(decoded, await self.batcher.forecast(decoded))
            else:
                response = await _call(model.predict, decoded, None)
        except QUIET as exc:
            status = next(code for kind, code in QUIET_STATUS if isinstance(exc, kind))
            rejections.info("rejected (%d): %s", status, exc)
            return status, orjson.dumps(error_body(path, status, str(exc), getattr(exc, "param", None)))
        if isinstance(response, InferResponse):
            return 200, v2_answer(response)
        return 200, orjson.dumps(response, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)
