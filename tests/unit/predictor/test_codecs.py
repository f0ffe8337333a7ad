"""v2 / v1 decoding and encoding in-process: each bad input is a 400 (`Rejected`) naming the problem
and counted by reason; each good one comes back as the float64 `[batch, window]` array."""

from __future__ import annotations

import numpy as np
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput
from prometheus_client import REGISTRY

from bundle import Forecast
from bundle.outputs import outputs
from predictor.codecs import binary_outputs, decode_v1, decode_v2, encode_v1, encode_v2
from serving.errors import Rejected

WINDOW = 3
LIMIT = 4
ROW = [10.0, 10.5, 11.0]


def v2(data, shape=None, name: str = "closes", datatype: str = "FP64", extra: int = 0) -> InferRequest:
    shape = shape if shape is not None else [1, WINDOW]
    inputs = [InferInput(name, shape, datatype, data) for _ in range(1 + extra)]
    return InferRequest("m", inputs)


def rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("forecaster_rejected_requests_total", {"reason": reason}) or 0.0


def refuses(call, reason: str, message: str) -> None:
    """`call()` raises a 400 whose text contains `message`, counted once under `reason`."""
    before = rejected(reason)
    with pytest.raises(Rejected) as info:
        call()
    assert isinstance(info.value, InvalidInput) and info.value.label == reason
    assert message in str(info.value) and message in info.value.reason  # kserve answers with .reason
    assert rejected(reason) == before + 1


# --- v2 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data,shape",
    [
        (ROW, [1, 3]),
        ([ROW], [1, 3]),
        ([*ROW, *ROW], [2, 3]),
        ([ROW, [1.0, 2.0, 3.0]], [2, 3]),
        ([ROW, [1, 2, 3]], [2, 3]),  # JSON integers are numbers too
    ],
    ids=["flat", "nested", "flat-batch", "nested-batch", "integers"],
)
def test_v2_flat_or_nested_data_decodes_row_major(data, shape):
    out = decode_v2(v2(data, shape), WINDOW, LIMIT)
    assert out.dtype == np.float64 and out.shape == tuple(shape)
    np.testing.assert_array_equal(out.reshape(-1), np.asarray(data, dtype=np.float64).reshape(-1))


@pytest.mark.parametrize("price", [0.01, 0.5, 0.999])
def test_prices_between_0_and_1_are_accepted(price):
    """Penny stocks and fractional prices are prices: only <= 0 is refused."""
    out = decode_v2(v2([price, 1.0, price]), WINDOW, LIMIT)
    assert out.tolist() == [[price, 1.0, price]]


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_v2_binary_tensor_data_decodes(datatype):
    """gRPC contents and the binary extension arrive as raw bytes, typed by the datatype."""
    inp = InferInput("closes", [2, WINDOW], datatype)
    inp.set_data_from_numpy(np.array([ROW, ROW], dtype=np.float32 if datatype == "FP32" else np.float64))
    out = decode_v2(InferRequest("m", [inp]), WINDOW, LIMIT)
    np.testing.assert_allclose(out, [ROW, ROW], rtol=1e-6)


def test_v2_malformed_binary_tensor_is_refused():
    raw = np.array([1.0, 2.0]).tobytes()  # 2 values for a [1, 3] shape
    request = InferRequest("m", [InferInput("closes", [1, WINDOW], "FP64")], raw_inputs=[raw])
    refuses(lambda: decode_v2(request, WINDOW, LIMIT), "data", "cannot read input 'closes' as FP64")


def test_batch_at_the_limit_is_accepted_one_over_is_refused():
    assert decode_v2(v2([ROW] * LIMIT, [LIMIT, WINDOW]), WINDOW, LIMIT).shape == (LIMIT, WINDOW)
    refuses(
        lambda: decode_v2(v2([ROW] * (LIMIT + 1), [LIMIT + 1, WINDOW]), WINDOW, LIMIT),
        "batch",
        "batch of 5 is over the limit of 4 windows",
    )


def test_rank_2_nesting_is_the_deepest_accepted():
    """A `[batch, window]` tensor nests two levels of lists at most; a third level is refused."""
    refuses(lambda: decode_v2(v2([[ROW]]), WINDOW, LIMIT), "data", "nested deeper than its rank 2")
    refuses(lambda: decode_v2(v2([[[ROW]]]), WINDOW, LIMIT), "data", "nested deeper than its rank 2")


@pytest.mark.parametrize(
    "request_,reason,message",
    [
        (v2(ROW, name="prices"), "input_name", "unknown input 'prices'"),
        (v2(ROW, extra=1), "input_name", "inputs ['closes', 'closes']: this model takes exactly one input"),
        (InferRequest("m", []), "input_name", "inputs []"),
        (v2(ROW, datatype="INT32"), "datatype", "unsupported datatype 'INT32'; accepted: FP32, FP64"),
        (v2(ROW, shape=[3]), "rank", "must have rank 2 [batch, 3], got shape [3]"),
        (v2(ROW, shape=[1, 3, 1]), "rank", "must have rank 2"),
        (v2(ROW[:2], shape=[1, 2]), "window", "window length is 2; this model needs 3"),
        (v2([], shape=[0, 3]), "shape", "batch is empty"),
        (v2(ROW, shape=[2, 3]), "shape", "data has 3 values but shape [2, 3] needs 6"),
        (v2([*ROW, 1.0], shape=[1, 3]), "shape", "data has 4 values"),
        (v2([10.0, True, 11.0]), "datatype", "data must be numbers, got True"),
        (v2([10.0, "11", 11.0]), "datatype", "data must be numbers, got '11'"),
        (v2([10.0, None, 11.0]), "datatype", "data must be numbers, got None"),
        (v2([10.0, float("nan"), 11.0]), "nan", "closes[0][1] is nan: prices must be finite"),
        (v2([ROW, [1.0, 2.0, float("inf")]], [2, 3]), "nan", "closes[1][2] is inf"),
        (v2([0.5, 2.0, 0.0]), "non_positive", "closes[0][2] is 0.0: prices must be > 0"),
        (v2([ROW, [0.5, -1.0, 2.0]], [2, 3]), "non_positive", "closes[1][1] is -1.0: prices must be > 0"),
    ],
    ids=lambda v: v if isinstance(v, str) and " " not in v else None,
)
def test_bad_v2_input_is_refused_naming_the_problem(request_, reason, message):
    refuses(lambda: decode_v2(request_, WINDOW, LIMIT), reason, message)


# --- v1 ---------------------------------------------------------------------------------------


def test_v1_instances_decode():
    out = decode_v1({"instances": [ROW, [1, 2, 3]]}, WINDOW, LIMIT)
    assert out.dtype == np.float64 and out.tolist() == [ROW, [1.0, 2.0, 3.0]]


def test_v1_batch_at_the_limit_is_accepted_one_over_is_refused():
    assert decode_v1({"instances": [ROW] * LIMIT}, WINDOW, LIMIT).shape == (LIMIT, WINDOW)
    refuses(
        lambda: decode_v1({"instances": [ROW] * (LIMIT + 1)}, WINDOW, LIMIT),
        "batch",
        "batch of 5 is over the limit of 4 windows",
    )


def test_v1_batch_limit_is_checked_before_the_rows():
    """An oversized batch is refused as such, whatever its rows hold: no row is read first."""
    refuses(lambda: decode_v1({"instances": [[1.0]] * (LIMIT + 1)}, WINDOW, LIMIT), "batch", "batch of 5")


@pytest.mark.parametrize(
    "body,reason,message",
    [
        ([ROW], "format", 'v1 body must be a JSON object {"instances"'),
        ({"inputs": [ROW]}, "format", "v1 body must be a JSON object"),
        ({"instances": ROW}, "rank", '"instances" must be a list of rows of 3 closes'),
        ({"instances": [ROW, 5.0]}, "rank", "must be a list of rows"),
        ({"instances": "abc"}, "rank", "must be a list of rows"),
        ({"instances": [ROW, ROW[:2]]}, "window", "instance 1 has 2 closes; this model needs 3"),
        ({"instances": []}, "shape", "batch is empty"),
        ({"instances": [[1.0, [2.0], 3.0]]}, "data", "nested deeper than its rank 2"),
        ({"instances": [[1.0, 0.0, 3.0]]}, "non_positive", "closes[0][1] is 0.0"),
    ],
)
def test_bad_v1_input_is_refused_naming_the_problem(body, reason, message):
    refuses(lambda: decode_v1(body, WINDOW, LIMIT), reason, message)


# --- encoding ---------------------------------------------------------------------------------

FORECAST = Forecast(
    mean=np.array([[11.0], [12.0]]),
    lower={0.95: np.array([[9.0], [10.0]]), 0.8: np.array([[10.0], [11.0]])},
    upper={0.95: np.array([[13.0], [14.0]]), 0.8: np.array([[12.0], [13.0]])},
)


DECLARED = outputs((0.95, 0.8))


def test_encode_v2_gives_the_declared_outputs_forecast_then_intervals_by_coverage():
    body, _ = encode_v2(FORECAST, DECLARED, "petr4", "req-1", "7").to_rest()
    assert body["id"] == "req-1" and body["model_name"] == "petr4" and body["model_version"] == "7"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert list(outputs) == ["forecast", "lower_80", "upper_80", "lower_95", "upper_95"]
    assert all(o["shape"] == [2] and o["datatype"] == "FP64" for o in outputs.values())
    expected = {"forecast": [11.0, 12.0], "lower_80": [10.0, 11.0], "upper_80": [12.0, 13.0],
                "lower_95": [9.0, 10.0], "upper_95": [13.0, 14.0]}  # fmt: skip
    assert {k: list(o["data"]) for k, o in outputs.items()} == expected


def test_binary_output_flags_are_rests_and_grpc_always_answers_raw_contents():
    """The extension's flags choose bytes per output on REST; gRPC ignores them (raw contents)."""
    asked = {"parameters": {"binary_data_output": True},
             "request_outputs": [RequestedOutput("lower_80", {"binary_data": False})]}  # fmt: skip
    rest = InferRequest("m", [], **asked)
    assert binary_outputs(rest, DECLARED) == (True, False, True, True, True)
    grpc = InferRequest("m", [], from_grpc=True, **asked)
    assert binary_outputs(grpc, DECLARED) == (False,) * len(DECLARED) == (False,) * 5


def test_encode_v2_invents_an_id_when_the_request_has_none():
    first, second = (encode_v2(FORECAST, DECLARED, "petr4", None, "7").to_rest()[0]["id"] for _ in range(2))
    assert len(first) == 32 and int(first, 16) >= 0 and first != second


def test_encode_v1_gives_one_row_per_window():
    assert encode_v1(FORECAST, DECLARED) == {
        "predictions": [
            {"forecast": 11.0, "lower_80": 10.0, "upper_80": 12.0, "lower_95": 9.0, "upper_95": 13.0},
            {"forecast": 12.0, "lower_80": 11.0, "upper_80": 13.0, "lower_95": 10.0, "upper_95": 14.0},
        ]
    }


def test_encode_honours_a_subset_of_the_declared_outputs():
    subset = tuple(o for o in DECLARED if o.name in {"forecast", "upper_95"})
    body, _ = encode_v2(FORECAST, subset, "petr4", "r", "7").to_rest()
    assert [o["name"] for o in body["outputs"]] == ["forecast", "upper_95"]
    assert encode_v1(FORECAST, subset)["predictions"][0] == {"forecast": 11.0, "upper_95": 13.0}


def test_grpc_raw_input_contents_decode_like_typed_contents():
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    rows = np.array([ROW, [5.0, 6.0, 7.0]])
    tensor = pb.ModelInferRequest.InferInputTensor(name="closes", datatype="FP64", shape=[2, WINDOW])
    raw = pb.ModelInferRequest(model_name="m", inputs=[tensor], raw_input_contents=[rows.tobytes()])
    assert decode_v2(InferRequest.from_grpc(raw), WINDOW, 2).tolist() == rows.tolist()
    short = pb.ModelInferRequest(model_name="m", inputs=[tensor], raw_input_contents=[rows.tobytes()[:-8]])
    with pytest.raises(Rejected, match="cannot read input 'closes' as FP64"):
        decode_v2(InferRequest.from_grpc(short), WINDOW, 2)
