"""serving.text: where a lone UTF-16 surrogate is, and when anything looks for one (issue 23)."""

from __future__ import annotations

import json

import orjson
import pytest

from serving.errors import Rejected, error_body, printable
from serving.text import check_strings, lone_surrogate, refuse_lone_surrogates


@pytest.mark.parametrize(
    ("document", "place"),
    [
        ({"id": "\ud800"}, "id"),
        ({"inputs": [{"name": "ok"}, {"name": "x\udfff"}]}, "inputs.1.name"),
        ({"parameters": {"\ud800": 1}}, "parameters.\\ud800"),
        ([["a", ["\udc00"]]], "0.1.0"),
        ("\ud800", ""),
        ({"id": "\U0001f600", "n": [1.0, 2, None, True]}, None),
        (json.loads('{"id": "\\ud83d\\ude00"}'), None),  # an escaped pair: one non-BMP character
    ],
)
def test_the_first_lone_surrogate_is_found_by_its_place(document, place):
    assert lone_surrogate(document) == place


def test_a_document_a_strict_parser_refused_for_other_reasons_is_left_to_the_caller():
    refuse_lone_surrogates(b'{"data": [NaN]}')  # orjson refuses NaN: kserve's route words that
    refuse_lone_surrogates(b'{"data": [1.0')  # truncated
    refuse_lone_surrogates(b'{"id": "\\u00e9"}')  # an escape, but valid text
    refuse_lone_surrogates(b"\xff\xfe")  # not UTF-8 at all


def test_a_lone_surrogate_is_refused_naming_its_field():
    raw = json.dumps({"inputs": [{"name": "closes", "parameters": {"k": "\ud800"}}]}).encode()
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(raw)  # what the fast paths and kserve's v1 decoding see: a position only
    with pytest.raises(Rejected) as refused:
        refuse_lone_surrogates(raw)
    assert refused.value.param == "inputs.0.parameters.k" and refused.value.label == "text"
    assert str(refused.value).startswith("inputs.0.parameters.k holds a lone UTF-16 surrogate")


def test_check_strings_looks_at_the_given_values_only():
    check_strings([("id", "ok"), ("parameters", {"a": 1.5}), ("name", None)])
    with pytest.raises(Rejected, match=r"^parameters\.a holds"):
        check_strings([("id", "ok"), ("parameters", {"a": "\udc00"})])


def test_every_error_body_is_encodable_whatever_it_quotes():
    body = error_body("/v2/models/m/infer", 400, "unknown output \ud800")
    assert orjson.dumps(body) == b'{"error":"unknown output \\\\ud800"}'
    series = error_body("/v1/timeseries/forecast", 400, "x", "inputs.\ud800")
    assert orjson.loads(orjson.dumps(series))["error"]["param"] == "inputs.\\ud800"
    assert printable("plain") == "plain" and printable("é\U0001f600") == "é\U0001f600"
