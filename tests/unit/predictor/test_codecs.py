"""v2 / v1 decoding and encoding in-process: every bad input is a Rejected (400) naming the problem."""

from __future__ import annotations

import numpy as np
import pytest
from kserve.protocol.infer_type import InferInput, InferRequest

from bundle import Forecast
from bundle.outputs import outputs
from predictor.codecs import Rejected, decode_v1, decode_v2, encode_v1, encode_v2

W = 4


def request(data, shape=None, name="closes", datatype="FP64", inputs=None) -> InferRequest:
    shape = shape if shape is not None else [1, len(data)]
    return InferRequest("m", infer_inputs=inputs or [InferInput(name, shape, datatype, data)])


GOOD = [1.0, 2.0, 3.0, 4.0]
CASES = {
    "unknown input name": (request(GOOD, name="prices"), "unknown input 'prices'", "input_name"),
    "two inputs": (
        request(GOOD, inputs=[InferInput("closes", [1, W], "FP64", GOOD)] * 2),
        "exactly one input named 'closes'",
        "input_name",
    ),
    "wrong rank": (request(GOOD, shape=[W]), f"must have rank 2 [batch, {W}], got shape [{W}]", "rank"),
    "rank 3": (request(GOOD, shape=[1, W, 1]), "must have rank 2", "rank"),
    "wrong window": (request(GOOD[:3]), f"window length is 3; this model needs {W}", "window"),
    "unsupported datatype": (
        request(GOOD, datatype="INT8"), "unsupported datatype 'INT8'; accepted: FP32, FP64", "datatype",
    ),
    "string values": (request([*GOOD[:3], "1"]), "data must be numbers, got '1'", "datatype"),
    "boolean values": (request([*GOOD[:3], True]), "data must be numbers, got True", "datatype"),
    "null values": (request([*GOOD[:3], None]), "data must be numbers, got None", "datatype"),
    "zero": (request([*GOOD[:3], 0.0]), "closes[0][3] is 0.0: prices must be > 0", "non_positive"),
    "negative": (request([-5.0, *GOOD[1:]]), "closes[0][0] is -5.0: prices must be > 0", "non_positive"),
    "NaN": (request([*GOOD[:3], float("nan")]), "closes[0][3] is nan: prices must be finite", "nan"),
    "infinity": (request([float("inf"), *GOOD[1:]]), "prices must be finite", "nan"),
    "data shorter than shape": (request(GOOD, shape=[2, W]), f"data has {W} values but shape [2, {W}]",
                                "shape"),
    "empty batch": (request([], shape=[0, W]), "batch is empty", "shape"),
    "batch over limit": (request(GOOD * 3, shape=[3, W]), "batch of 3 is over the limit of 2", "batch"),
    "nested too deep": (request([[[GOOD]]], shape=[1, W]), "nested deeper than its rank 2", "data"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_bad_v2_input_is_rejected_naming_the_problem(case):
    req, message, reason = CASES[case]
    with pytest.raises(Rejected) as caught:
        decode_v2(req, window=W, max_batch=2)
    assert message in caught.value.reason and caught.value.label == reason


def test_good_v2_input_decodes_to_float64_rows_json_and_typed():
    rows = [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]
    nested = decode_v2(request(rows, shape=[2, W]), W, 2)
    flat = decode_v2(request([v for r in rows for v in r], shape=[2, W], datatype="FP32"), W, 2)
    assert nested.dtype == np.float64 and nested.tolist() == rows and flat.tolist() == rows


def test_prices_below_one_are_valid():
    assert decode_v2(request([0.001, 0.5, 0.999, 0.01]), W, 1).tolist() == [[0.001, 0.5, 0.999, 0.01]]


def test_typed_numpy_contents_decode():
    inp = InferInput("closes", [1, W], "FP32")
    inp.set_data_from_numpy(np.array([GOOD], dtype=np.float32))
    assert decode_v2(InferRequest("m", infer_inputs=[inp]), W, 1).tolist() == [GOOD]


@pytest.mark.parametrize(
    "body,message,reason",
    [
        ({"instances": [GOOD[:3]]}, f"instance 0 has 3 closes; this model needs {W}", "window"),
        ({"instances": GOOD}, '"instances" must be a list of rows', "rank"),
        ({"inputs": [GOOD]}, 'v1 body must be a JSON object {"instances"', "format"),
        ([GOOD], 'v1 body must be a JSON object {"instances"', "format"),
        ({"instances": [[*GOOD[:3], -1.0]]}, "prices must be > 0", "non_positive"),
        ({"instances": [GOOD] * 3}, "batch of 3 is over the limit of 2", "batch"),
    ],
)
def test_bad_v1_input_is_rejected(body, message, reason):
    with pytest.raises(Rejected) as caught:
        decode_v1(body, window=W, max_batch=2)
    assert message in caught.value.reason and caught.value.label == reason


def test_v1_batch_at_the_limit_is_accepted():
    assert decode_v1({"instances": [GOOD, GOOD]}, W, 2).shape == (2, W)


def forecast_of_two_rows() -> Forecast:
    mean = np.array([[10.0], [20.0]])
    return Forecast(
        mean=mean,
        lower={0.8: mean * 0.9, 0.95: mean * 0.8},
        upper={0.8: mean * 1.1, 0.95: mean * 1.2},
    )


def test_v2_answer_has_one_tensor_per_declared_output_in_order():
    declared = outputs((0.95, 0.8))
    response = encode_v2(forecast_of_two_rows(), declared, "m", "req-1")
    assert [o.name for o in response.outputs] == ["forecast", "lower_80", "upper_80", "lower_95", "upper_95"]
    assert response.id == "req-1" and response.model_name == "m"
    by_name = {o.name: o for o in response.outputs}
    assert by_name["forecast"].shape == [2] and by_name["forecast"].datatype == "FP64"
    assert by_name["lower_95"].data == pytest.approx([8.0, 16.0])
    assert by_name["upper_80"].data == pytest.approx([11.0, 22.0])


def test_v1_answer_has_a_row_per_window_with_every_declared_output():
    rows = encode_v1(forecast_of_two_rows(), outputs((0.8, 0.95)))["predictions"]
    assert rows[1] == pytest.approx(
        {"forecast": 20.0, "lower_80": 18.0, "upper_80": 22.0, "lower_95": 16.0, "upper_95": 24.0}
    )


def test_grpc_raw_input_contents_decode_like_typed_contents():
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    rows = np.array([GOOD, [5.0, 6.0, 7.0, 8.0]])
    tensor = pb.ModelInferRequest.InferInputTensor(name="closes", datatype="FP64", shape=[2, W])
    raw = pb.ModelInferRequest(model_name="m", inputs=[tensor], raw_input_contents=[rows.tobytes()])
    assert decode_v2(InferRequest.from_grpc(raw), W, 2).tolist() == rows.tolist()
    short = pb.ModelInferRequest(model_name="m", inputs=[tensor], raw_input_contents=[rows.tobytes()[:-8]])
    with pytest.raises(Rejected, match="cannot read input 'closes' as FP64"):
        decode_v2(InferRequest.from_grpc(short), W, 2)
