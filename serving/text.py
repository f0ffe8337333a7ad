"""Lone UTF-16 surrogates: valid JSON, invalid text; a 400 naming the field, never a 500.

`"\\ud800"` is a JSON string that Python's json (FastAPI's parser, kserve's v2 route) reads into a
`str` no UTF-8 encoder accepts: echoed (a request id) or written to an error or a log line, it was a
500. orjson (the fast paths, kserve's v1 decoding, the binary extension's header) and pydantic's
jiter (the time-series API's strict parse) refuse such documents instead, with a position but no
field. So the cost stays off the request path: a document a strict parser accepted holds no lone
surrogate; only when one refuses (`refuse_lone_surrogates(raw)`), and on kserve's v2 route for the
strings it echoes or uses (`check_strings`), is anything looked at. Non-BMP characters (an escaped
pair `"\\ud83d\\ude00"` or raw UTF-8) are valid text and pass.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from serving.errors import Rejected, printable

MAX_DEPTH = 64  # deeper documents are refused by their parser first (the guard's limits, kserve's)


def _lone(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def lone_surrogate(document, place: str = "", depth: int = 0) -> str | None:
    """The dotted place (`inputs.0.name`, `parameters.<key>`) of the first string, key or value, of
    a parsed JSON document that holds a lone surrogate; "" for the document itself; None if none."""
    if isinstance(document, str):
        return place if _lone(document) else None
    if depth > MAX_DEPTH:
        return None
    if isinstance(document, dict):
        for key, value in document.items():
            here = f"{place}.{printable(key)}" if place else printable(key)
            if isinstance(key, str) and _lone(key):
                return here
            found = lone_surrogate(value, here, depth + 1)
            if found is not None:
                return found
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found = lone_surrogate(value, f"{place}.{index}" if place else str(index), depth + 1)
            if found is not None:
                return found
    return None


def refused(place: str) -> Rejected:
    where = place or "the body"
    return Rejected(
        "text", f"{where} holds a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape): "
        "strings must be valid Unicode", place or None,
    )  # fmt: skip


def refuse_lone_surrogates(raw: bytes | str) -> None:
    """After a strict parser refused `raw`: Rejected naming the field when the refusal was a lone
    surrogate (Python's json reads the document and finds one), else nothing (the caller answers
    as it did)."""
    if b"\\u" not in (raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")):
        return
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return
    place = lone_surrogate(document)
    if place is not None:
        raise refused(place)


def check_strings(fields: Iterable[tuple[str, object]]) -> None:
    """Each (place, value) whose value (a string, or a parameters object) holds a lone surrogate:
    Rejected naming it. For documents a lenient parser read (kserve's v2 route)."""
    for place, value in fields:
        found = lone_surrogate(value, place)
        if found is not None:
            raise refused(found)
