"""v2 JSON without kserve's objects: the requests a fast path reads (`checked_request`: a body
kserve's pydantic `InferenceRequest` accepts unchanged, its own data; anything it would coerce or
refuse is kserve's), and the one writer of our v2 JSON answers (`v2_answer`)."""

from __future__ import annotations

from typing import NamedTuple

import orjson

from serving.asgi import FallThroughError

PARAMETER_TYPES = (str, bool, int, float)  # kserve's InferParameter: Strict{Float,Int,Bool} | str
INPUT_KEYS = frozenset(("name", "shape", "datatype", "parameters", "data"))
OUTPUT_KEYS = frozenset(("name", "parameters"))
REQUEST_KEYS = frozenset(("id", "parameters", "inputs", "outputs"))
ANSWER_FIELDS = ("model_name", "model_version", "id", "parameters")  # InferenceResponse's order


class V2Request(NamedTuple):
    """A v2 JSON request as kserve's pydantic model accepts it unchanged: the body's own values."""

    id: str | None
    inputs: list[dict]  # each: name (str), shape (list of int), datatype, data (list), parameters?
    outputs: list[dict] | None  # each: name (str), parameters?
    parameters: dict | None


def _parameters(value) -> None:
    """A `parameters` object exactly as pydantic's `Parameters` would keep it, else FallThroughError."""
    if value is None:
        return
    if not isinstance(value, dict) or not all(type(v) in PARAMETER_TYPES for v in value.values()):
        raise FallThroughError


def _input(item, datatypes: tuple[str, ...]) -> None:
    """One `inputs` entry pydantic's `RequestInput` would accept without coercion, with a datatype of
    `datatypes` (other datatypes: kserve's checks word those refusals, case, FP16, ...)."""
    if not isinstance(item, dict) or not item.keys() <= INPUT_KEYS:
        raise FallThroughError
    if type(item.get("name")) is not str or item.get("datatype") not in datatypes:
        raise FallThroughError
    shape = item.get("shape")
    if type(item.get("data")) is not list or type(shape) is not list:
        raise FallThroughError
    if not all(type(d) is int for d in shape):
        raise FallThroughError
    _parameters(item.get("parameters"))


def checked_request(body, datatypes: tuple[str, ...]) -> V2Request:
    """The parsed JSON `body` as the request kserve's route would read, or FallThroughError."""
    if not isinstance(body, dict) or not body.keys() <= REQUEST_KEYS or type(body.get("inputs")) is not list:
        raise FallThroughError
    request_id, outputs = body.get("id"), body.get("outputs")
    if request_id is not None and type(request_id) is not str:
        raise FallThroughError
    for item in body["inputs"]:
        _input(item, datatypes)
    if outputs is not None:
        if type(outputs) is not list:
            raise FallThroughError
        for out in outputs:
            if not isinstance(out, dict) or not out.keys() <= OUTPUT_KEYS or type(out.get("name")) is not str:
                raise FallThroughError
            _parameters(out.get("parameters"))
    _parameters(body.get("parameters"))
    return V2Request(request_id, body["inputs"], outputs, body.get("parameters"))


def v2_answer(response: dict, nulls: bool = False) -> bytes:
    """A v2 answer's bytes as kserve's `InferenceResponse` writes them, its field order, without null
    fields or with them (`nulls`: kserve's own route's, the transformer's). Outputs are written as
    given (kserve's `to_rest` and the fast paths give them in its order)."""
    fields = {k: response.get(k) for k in ANSWER_FIELDS}
    if not nulls:
        fields = {k: v for k, v in fields.items() if v is not None}
    return orjson.dumps({**fields, "outputs": response["outputs"]})
