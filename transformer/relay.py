"""Requests that carry their closes go to the predictor untouched (as v2), answers come back as asked.

With a transformer, KServe routes the InferenceService's URL to it, not to the predictor: without
this relay every existing client sending 60 closes would be refused. The predictor validates them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse

from bundle.outputs import INPUT_NAME
from serving.v2 import V2Request


@dataclass(frozen=True)
class Relay:
    request: InferRequest  # what the predictor receives
    v2: bool


def carries_closes(payload: InferRequest | V2Request | dict) -> bool:
    if isinstance(payload, InferRequest):
        return any(i.name == INPUT_NAME for i in payload.inputs)
    if isinstance(payload, V2Request):  # the fast path's: it leaves relays to kserve's route
        return any(i["name"] == INPUT_NAME for i in payload.inputs)
    rows = payload.get("instances") if isinstance(payload, dict) else None
    return isinstance(rows, list) and bool(rows) and all(isinstance(r, list) for r in rows)


def _v1_request(body: dict) -> InferRequest:
    """v1 `{"instances": [[closes], ...]}` as the v2 tensor the predictor reads; a shape it could not
    hold is refused here, every other check is the predictor's."""
    rows = body["instances"]
    if set(body) != {"instances"}:
        raise InvalidInput(f'a v1 body with closes holds "instances" only, got keys {sorted(body)}')
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise InvalidInput(f"instance {i} has {len(row)} closes, instance 0 has {width}")
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in row):
            raise InvalidInput(f"instance {i} holds a value that is not a number")
    data = InferInput(INPUT_NAME, [len(rows), width], "FP64", rows)
    return InferRequest(model_name="", infer_inputs=[data], request_id=uuid.uuid4().hex)


def relay_of(payload: InferRequest | dict) -> Relay:
    if isinstance(payload, InferRequest):
        return Relay(payload, v2=True)
    return Relay(_v1_request(payload), v2=False)


def v1_answer(response: InferResponse) -> dict:
    """The predictor's own v1 shape: one object per row with a key per declared output, and its
    `parameters` (which calibration served) beside them."""
    columns = {o.name: np.asarray(o.as_numpy(), dtype=np.float64).reshape(-1) for o in response.outputs}
    rows = len(next(iter(columns.values()))) if columns else 0
    answer: dict = {
        "predictions": [{name: float(values[i]) for name, values in columns.items()} for i in range(rows)]
    }
    if response.parameters:
        answer["parameters"] = dict(response.parameters)
    return answer
