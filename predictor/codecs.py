"""Request decoding with strict validation, and response encoding (v2 and v1).

kserve passes malformed tensors straight to the model (500s, NaN answered as a number); every check
here turns bad input into a 400 that names the problem.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import numpy as np
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse

from bundle import Forecast
from predictor.metrics import REJECTED

INPUT_NAME = "closes"
OUTPUT_MEAN = "forecast"
ACCEPTED_DATATYPES = ("FP32", "FP64")


class Rejected(InvalidInput):
    """A 400 with a reason label for the rejected-requests counter."""

    def __init__(self, reason: str, message: str) -> None:
        REJECTED.labels(reason).inc()
        super().__init__(message)  # kserve keeps the message in .reason
        self.label = reason


def interval_names(coverage: float) -> tuple[str, str]:
    pct = round(coverage * 100)
    return f"lower_{pct}", f"upper_{pct}"


def _flatten(data: Sequence, depth: int = 0) -> list:
    """Row-major values of a flat or nested JSON list; only numbers (no bools, strings, nulls)."""
    if depth > 1:  # a flat list is depth 0; the rows of a nested [batch, window] list are depth 1
        raise Rejected("data", f"input {INPUT_NAME!r} data is nested deeper than its rank 2")
    out: list = []
    for item in data:
        if isinstance(item, list):
            out.extend(_flatten(item, depth + 1))
        elif isinstance(item, bool) or not isinstance(item, int | float):
            raise Rejected("datatype", f"input {INPUT_NAME!r} data must be numbers, got {item!r}")
        else:
            out.append(item)
    return out


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
    names = [i.name for i in request.inputs]
    if len(names) != 1 or names[0] != INPUT_NAME:
        unknown = [n for n in names if n != INPUT_NAME]
        detail = f"unknown input {unknown[0]!r}" if unknown else f"inputs {names}"
        raise Rejected("input_name", f"{detail}: this model takes exactly one input named {INPUT_NAME!r}")
    inp: InferInput = request.inputs[0]
    if inp.datatype not in ACCEPTED_DATATYPES:
        raise Rejected(
            "datatype",
            f"unsupported datatype {inp.datatype!r}; accepted: " + ", ".join(ACCEPTED_DATATYPES),
        )
    shape = list(inp.shape)
    if len(shape) != 2:
        raise Rejected("rank", f"input {INPUT_NAME!r} must have rank 2 [batch, {window}], got shape {shape}")
    if shape[1] != window:
        raise Rejected("window", f"window length is {shape[1]}; this model needs {window} closes per row")
    if isinstance(inp.data, list):
        values = np.asarray(_flatten(inp.data), dtype=np.float64)
    else:  # gRPC contents or raw bytes: typed by the protocol
        try:
            values = np.asarray(inp.as_numpy(), dtype=np.float64).reshape(-1)
        except Exception as exc:  # kserve raises assorted errors on malformed tensors
            raise Rejected("data", f"cannot read input {INPUT_NAME!r} as {inp.datatype}: {exc}") from exc
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
    return check_closes(np.asarray(_flatten(rows), dtype=np.float64), len(rows), window, max_batch)


def encode_v2(result: Forecast, model_name: str, request_id: str | None) -> InferResponse:
    """`forecast[batch]` plus `lower_XX` / `upper_XX[batch]` per conformal coverage, FP64."""
    mean = result.mean[:, 0]
    outputs = [InferOutput(OUTPUT_MEAN, [len(mean)], "FP64", mean)]
    for coverage in sorted(result.lower):
        lo, hi = interval_names(coverage)
        outputs.append(InferOutput(lo, [len(mean)], "FP64", result.lower[coverage][:, 0]))
        outputs.append(InferOutput(hi, [len(mean)], "FP64", result.upper[coverage][:, 0]))
    return InferResponse(
        response_id=request_id or uuid.uuid4().hex, model_name=model_name, infer_outputs=outputs
    )


def encode_v1(result: Forecast) -> dict:
    rows = []
    for i, mean in enumerate(result.mean[:, 0]):
        row = {OUTPUT_MEAN: float(mean)}
        for coverage in sorted(result.lower):
            lo, hi = interval_names(coverage)
            row[lo], row[hi] = (
                float(result.lower[coverage][i, 0]),
                float(result.upper[coverage][i, 0]),
            )
        rows.append(row)
    return {"predictions": rows}
