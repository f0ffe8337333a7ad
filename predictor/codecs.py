"""Request decoding with strict validation, and response encoding (v2 and v1).

kserve passes malformed tensors straight to the model (500s, NaN answered as a number); every check
here turns bad input into a 400 that names the problem, whether a v2 request comes as kserve's
`InferRequest` or as the fast path's plain JSON (serving.v2.V2Request).
"""

from __future__ import annotations

import uuid

import numpy as np
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse, RequestedOutput

from bundle import Forecast, OnnxForecaster, PredictiveDistribution
from bundle.outputs import INPUT_DATATYPES, INPUT_NAME, Output, columns
from serving.errors import Rejected
from serving.v2 import V2Request

FP32_MAX = float(np.finfo(np.float32).max)
NUMBER_TYPES = frozenset((float, int))
ACCEPTED = ", ".join(INPUT_DATATYPES)
DTYPES = {"FP32": np.float32, "FP64": np.float64}  # kserve's, for its InferInput.as_numpy of JSON data


def _numbers(values: list) -> np.ndarray:
    """JSON numbers -> float64: no bools, strings, nulls or lists, nothing beyond float64's range."""
    if set(map(type, values)) <= NUMBER_TYPES:  # the usual request, at C speed (a bool's type is bool)
        return _float64(values)
    for value in values:
        if isinstance(value, list):
            raise Rejected("data", f"input {INPUT_NAME!r} data is nested deeper than its rank 2")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Rejected("datatype", f"input {INPUT_NAME!r} data must be numbers, got {value!r}")
    return _float64(values)


def _float64(values: list) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except OverflowError as exc:  # a JSON integer literal such as 1e400 written out in digits
        raise Rejected("data", f"input {INPUT_NAME!r} holds a number beyond the float64 range") from exc


def _json_values(data: list, window: int) -> np.ndarray:
    """Row-major values of flat data, or of nested `[rows][window]` data. Ragged rows are refused,
    never re-split: 61 + 59 values are not two windows of 60."""
    if not any(isinstance(item, list) for item in data):  # flat (the fast check is _numbers')
        return _numbers(data)
    if not all(isinstance(item, list) for item in data):
        raise Rejected("data", f"input {INPUT_NAME!r} data mixes rows and numbers")
    rows = [_numbers(row) for row in data]
    for i, row in enumerate(rows):
        if len(row) != window:
            raise Rejected(
                "shape", f"row {i} of input {INPUT_NAME!r} has {len(row)} values; each needs {window}"
            )
    return np.concatenate(rows)


def check_closes(values: np.ndarray, rows: int, window: int, max_batch: int) -> np.ndarray:
    """Shape, batch limit, finiteness and positivity of a `[rows, window]` array."""
    if rows < 1:
        raise Rejected("shape", "batch is empty: send at least one window")
    if rows > max_batch:
        raise Rejected("batch", f"batch of {rows} is over the limit of {max_batch} windows")
    if values.size != rows * window:
        raise Rejected(
            "shape",
            f"data has {values.size} values but shape [{rows}, {window}] needs {rows * window}",
        )
    closes = values.reshape(rows, window)
    bad = ~np.isfinite(closes)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise Rejected("nan", f"closes[{r}][{c}] is {closes[r, c]}: prices must be finite")
    if (closes <= 0).any():
        r, c = np.argwhere(closes <= 0)[0]
        raise Rejected("non_positive", f"closes[{r}][{c}] is {closes[r, c]}: prices must be > 0")
    return closes


def decode_v2(request: InferRequest, window: int, max_batch: int) -> np.ndarray:
    """One input named `closes`, FP32 or FP64, shape `[batch, window]` -> float64 array."""
    _one_input([i.name for i in request.inputs])
    inp = request.inputs[0]
    return _tensor(inp.datatype, inp.shape, inp.data, inp.as_numpy, window, max_batch)


def decode_v2_json(request: V2Request, window: int, max_batch: int) -> np.ndarray:
    """`decode_v2` of the fast path's plain request (JSON data, an FP32 or FP64 datatype)."""
    _one_input([i["name"] for i in request.inputs])
    inp = request.inputs[0]
    return _tensor(inp["datatype"], inp["shape"], inp["data"], None, window, max_batch)


def _one_input(names: list[str]) -> None:
    if len(names) != 1 or names[0] != INPUT_NAME:
        unknown = [n for n in names if n != INPUT_NAME]
        detail = f"unknown input {unknown[0]!r}" if unknown else f"inputs {names}"
        raise Rejected("input_name", f"{detail}: this model takes exactly one input named {INPUT_NAME!r}")


def _tensor(datatype: str, shape, data, as_numpy, window: int, max_batch: int) -> np.ndarray:
    """The checks of one `closes` tensor; `as_numpy()` reads data that is not a JSON list (None:
    `data` is one, maybe empty, read as kserve's `InferInput.as_numpy` reads it)."""
    if datatype not in INPUT_DATATYPES:
        raise Rejected("datatype", f"unsupported datatype {datatype!r}; accepted: {ACCEPTED}")
    shape = list(shape)
    if len(shape) != 2:
        raise Rejected("rank", f"input {INPUT_NAME!r} must have rank 2 [batch, {window}], got shape {shape}")
    if shape[1] != window:
        raise Rejected("window", f"window length is {shape[1]}; this model needs {window} closes per row")
    if isinstance(data, list) and data:  # JSON, or gRPC typed contents
        values = _json_values(data, window)
        if datatype == "FP32" and (np.abs(values[np.isfinite(values)]) > FP32_MAX).any():
            raise Rejected("data", f"input {INPUT_NAME!r} is FP32 but holds values beyond the FP32 range")
    else:  # raw bytes (REST binary extension, gRPC raw_input_contents), or nothing at all
        try:
            raw = as_numpy() if as_numpy else np.array(data, dtype=DTYPES[datatype]).reshape(shape)
            values = np.asarray(raw, dtype=np.float64).reshape(-1)
        except Exception as exc:  # kserve raises assorted errors on malformed tensors
            raise Rejected("data", f"cannot read input {INPUT_NAME!r} as {datatype}: {exc}") from exc
    return check_closes(values, shape[0], window, max_batch)


def decode_v1(body: dict, window: int, max_batch: int) -> np.ndarray:
    """`{"instances": [[window closes], ...]}` -> float64 array."""
    if not isinstance(body, dict) or "instances" not in body:
        raise Rejected("format", 'v1 body must be a JSON object {"instances": [[closes...], ...]}')
    rows = body["instances"]
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise Rejected("rank", f'"instances" must be a list of rows of {window} closes')
    if len(rows) > max_batch:
        raise Rejected("batch", f"batch of {len(rows)} is over the limit of {max_batch} windows")
    for i, row in enumerate(rows):
        if len(row) != window:
            raise Rejected("window", f"instance {i} has {len(row)} closes; this model needs {window}")
    return check_closes(_json_values(rows, window), len(rows), window, max_batch)


def _asked(request: InferRequest | V2Request) -> dict[str, dict | None]:
    """The v2 request's `outputs`: {name: its parameters}, in its order."""
    if isinstance(request, V2Request):
        return {o["name"]: o.get("parameters") for o in request.outputs or ()}
    return {o.name: o.parameters for o in request.request_outputs or ()}


def requested_outputs(request: InferRequest | V2Request, declared: tuple[Output, ...]) -> tuple[Output, ...]:
    """The v2 request's `outputs` (in declared order), or every declared output when it names none."""
    names = _asked(request)
    if not names:
        return declared
    known = {o.name for o in declared}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise Rejected("output", f"unknown output {unknown[0]!r}; this model gives {sorted(known)}")
    return tuple(o for o in declared if o.name in names)


def binary_outputs(request: InferRequest | V2Request, wanted: tuple[Output, ...]) -> tuple[bool, ...]:
    """Which outputs go back as raw bytes (REST binary tensor extension): an output's own
    `binary_data` parameter, else the request's `binary_data_output`, else JSON. gRPC answers raw
    contents whatever these say (the extension is REST's)."""
    if isinstance(request, InferRequest) and request.from_grpc:
        return (False,) * len(wanted)
    default, own = _flag(request.parameters, "binary_data_output", False), _asked(request)
    return tuple(_flag(own.get(o.name), "binary_data", default) for o in wanted)


def _flag(parameters: dict | None, key: str, default: bool) -> bool:
    value = (parameters or {}).get(key, default)
    if not isinstance(value, bool):
        raise Rejected("parameter", f"parameter {key!r} must be true or false, got {value!r}")
    return value


def finite_forecast(
    forecaster: OnnxForecaster, closes: np.ndarray, horizon: int,
    distribution: PredictiveDistribution | None = None,
) -> Forecast:  # fmt: skip
    """The forecast (with `distribution`, an online state's, instead of the bundle's), refused when
    closes near the float64 limit overflow an output to inf (JSON would carry it as null): numpy's
    overflow warning is expected here, the refusal is the answer."""
    with np.errstate(over="ignore", invalid="ignore"):
        result = forecaster.forecast(closes, horizon, distribution)
    for out in forecaster.outputs:
        if not np.isfinite(out.values(result)).all():
            raise Rejected("overflow", f"{out.name} is not finite for these closes: prices are too extreme")
    return result


def encode_v2(result: Forecast, declared: tuple[Output, ...], model_name: str, request_id: str | None,
              version: str, binary: tuple[bool, ...] | None = None,
              parameters: dict[str, str] | None = None) -> InferResponse:  # fmt: skip
    """One `[batch]` tensor per declared output (bundle.outputs), in declared order, named with the
    version that answered; `binary` (per output) sends an output as raw bytes over REST;
    `parameters` (the calibration served, predictor.calibration) are the response's."""
    outputs = [
        InferOutput(out.name, [len(values)], out.datatype, values)
        for out, values in zip(declared, columns(result, declared).values(), strict=True)
    ]
    flags = binary or (False,) * len(declared)
    # pragma: no mutate start (immaterial: the one caller builds both from the same outputs)
    wanted = [RequestedOutput(o.name, {"binary_data": b}) for o, b in zip(declared, flags, strict=True)]
    # pragma: no mutate end
    return InferResponse(
        response_id=request_id or uuid.uuid4().hex, model_name=model_name, model_version=version,
        infer_outputs=outputs, requested_outputs=wanted, parameters=parameters or None,
    )  # fmt: skip


def v2_json_outputs(result: Forecast, declared: tuple[Output, ...]) -> list[dict]:
    """`encode_v2`'s outputs as kserve's route writes them in JSON, from the forecast's arrays."""
    return [
        {"name": out.name, "shape": [len(values)], "datatype": out.datatype, "data": values.tolist()}
        for out, values in zip(declared, columns(result, declared).values(), strict=True)
    ]


def encode_v1(result: Forecast, declared: tuple[Output, ...], parameters: dict | None = None) -> dict:
    """One object per row with a key per declared output; `parameters` (the calibration served) beside
    `predictions`, where v1 clients, which read `predictions`, are not disturbed."""
    table = columns(result, declared)
    rows = range(len(result.mean))
    answer = {"predictions": [{name: float(values[i]) for name, values in table.items()} for i in rows]}
    if parameters:
        answer["parameters"] = parameters
    return answer
