"""The one-call ask as decoded from v1 and v2, and which calls are relayed with their closes."""

from __future__ import annotations

from datetime import date

import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

from transformer.relay import carries_closes, relay_of, v1_answer
from transformer.request import decode_v1, decode_v2


def v2(**fields) -> InferRequest:
    inputs = [InferInput(k, [1], "BYTES", [v]) for k, v in fields.items()]
    return InferRequest(model_name="m", infer_inputs=inputs, request_id="r")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"as_of": "2024-06-03"},
        {"instances": [{"as_of": "2024-06-03", "ticker": "petr4.sa"}]},
        {"instances": []},
    ],
)
def test_v1_asks(body):
    ask = decode_v1(body, "PETR4.SA")
    assert ask.ticker == "PETR4.SA" and not ask.v2
    assert ask.as_of == (date(2024, 6, 3) if "2024" in str(body) else None)


def test_v2_asks_read_strings_and_bytes():
    ask = decode_v2(v2(as_of=b"2024-06-03", ticker="PETR4.SA"), "PETR4.SA")
    assert (ask.as_of, ask.v2, ask.request_id) == (date(2024, 6, 3), True, "r")
    assert decode_v2(v2(), "PETR4.SA").as_of is None


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ([], "JSON object"),
        ({"as_of": 20240603}, "date string"),
        ({"as_of": "2024-13-01"}, "YYYY-MM-DD"),
        ({"ticker": ""}, "non-empty"),
        ({"instances": [[1.0]], "extra": 1}, "at most one object"),
        ({"instances": ["2024-06-03"]}, "must be an object"),
        ({"window": 60}, "unknown field 'window'"),
    ],
)
def test_v1_refusals_name_the_problem(body, says):
    with pytest.raises(InvalidInput, match=says):
        decode_v1(body, "PETR4.SA")


def test_v2_refusals_name_the_problem():
    with pytest.raises(InvalidInput, match="unknown input 'horizon'"):
        decode_v2(v2(horizon="5"), "PETR4.SA")
    two = InferRequest(model_name="m", infer_inputs=[InferInput("as_of", [2], "BYTES", ["a", "b"])])
    with pytest.raises(InvalidInput, match="shape \\[1\\]"):
        decode_v2(two, "PETR4.SA")


def test_calls_with_closes_are_relayed_and_v1_answers_keep_the_predictor_s_shape():
    closes = InferRequest(
        model_name="m", infer_inputs=[InferInput("closes", [1, 3], "FP64", [[1.0, 2.0, 3.0]])]
    )
    assert carries_closes(closes) and carries_closes({"instances": [[1.0, 2.0]]})
    assert not carries_closes({"instances": [{"as_of": "2024-06-03"}]}) and not carries_closes({})
    relay = relay_of({"instances": [[1.0, 2.0], [3.0, 4.0]]})
    assert not relay.v2 and relay.request.inputs[0].shape == [2, 2]
    with pytest.raises(InvalidInput, match="instance 1 holds a value that is not a number"):
        relay_of({"instances": [[1.0, 2.0], [3.0, True]]})
    from kserve.protocol.infer_type import InferOutput, InferResponse

    response = InferResponse("r", "m", [InferOutput("forecast", [2], "FP64", [1.5, 2.5])])
    assert v1_answer(response) == {"predictions": [{"forecast": 1.5}, {"forecast": 2.5}]}
