"""The one-call request: which ticker and, optionally, as of which date. No closes: the transformer
fetches them. v1 `{"instances": [{"as_of": "2024-06-03"}]}` (or the object alone, or `{}`); v2 BYTES
inputs `ticker` and `as_of`, shape [1] (or no inputs)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest

from serving.v2 import V2Request

FIELDS = ("ticker", "as_of")


@dataclass(frozen=True)
class Ask:
    ticker: str
    as_of: date | None
    v2: bool
    request_id: str | None = None


def _date(text: object) -> date:
    if not isinstance(text, str):
        raise InvalidInput(f"as_of must be a date string YYYY-MM-DD, got {text!r}")
    try:
        return date.fromisoformat(text.strip())
    except ValueError as exc:
        raise InvalidInput(f"as_of must be a date YYYY-MM-DD, got {text!r}") from exc


def _ask(fields: dict, default_ticker: str, v2: bool, request_id: str | None) -> Ask:
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        hint = " (the closes are fetched here: send none)" if "closes" in unknown else ""
        raise InvalidInput(f"unknown field {unknown[0]!r}{hint}; this endpoint takes {list(FIELDS)}")
    ticker = fields.get("ticker", default_ticker)
    if not isinstance(ticker, str) or not ticker.strip():
        raise InvalidInput(f"ticker must be a non-empty string, got {ticker!r}")
    if ticker.strip().upper() != default_ticker.upper():
        raise InvalidInput(f"this model forecasts {default_ticker}, not {ticker!r}")
    as_of = fields.get("as_of")
    return Ask(default_ticker, None if as_of is None else _date(as_of), v2, request_id)


def decode_v1(body: object, ticker: str) -> Ask:
    if not isinstance(body, dict):
        raise InvalidInput('v1 body must be a JSON object: {"instances": [{"as_of": "YYYY-MM-DD"}]} or {}')
    if "instances" in body:
        rows = body["instances"]
        if set(body) != {"instances"} or not isinstance(rows, list) or len(rows) > 1:
            raise InvalidInput('"instances" must be a list of at most one object {"ticker", "as_of"}')
        body = rows[0] if rows else {}
        if not isinstance(body, dict):
            raise InvalidInput(f'the instance must be an object {{"ticker", "as_of"}}, got {body!r}')
    return _ask(body, ticker, v2=False, request_id=None)


def decode_v2(request: InferRequest | V2Request, ticker: str) -> Ask:
    """kserve's `InferRequest`, or the fast path's plain request (serving.v2)."""
    if isinstance(request, V2Request):
        inputs = [(i["name"], i["datatype"], i["shape"], i["data"]) for i in request.inputs]
    else:
        inputs = [(i.name, i.datatype, i.shape, i.data) for i in request.inputs]
    fields: dict = {}
    for name, datatype, shape, data in inputs:
        if name not in FIELDS:
            hint = " (the closes are fetched here: send none)" if name == "closes" else ""
            raise InvalidInput(f"unknown input {name!r}{hint}; this endpoint takes {list(FIELDS)}")
        if datatype != "BYTES" or list(shape) != [1]:
            raise InvalidInput(f"input {name!r} must be BYTES of shape [1], got {datatype} {shape}")
        if not isinstance(data, list) or len(data) != 1:
            raise InvalidInput(f"input {name!r} must hold exactly one string")
        value = data[0]
        fields[name] = value.decode() if isinstance(value, bytes) else value
    return _ask(fields, ticker, v2=True, request_id=request.id)
