"""From cached closes to the predictor's input, and from its answer (or a failure) to the one-call answer.

The answer says which session it was computed from, how fresh the data is, and carries every output
the predictor declares (the point forecast and each `lower_XX`/`upper_XX` bound, bundle.outputs).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date

import numpy as np
from kserve.errors import InvalidInput

from bundle.outputs import MEAN
from marketdata.cache import Snapshot, StaleDataError
from marketdata.calendar import SessionCalendar
from serving.errors import rejections
from serving.metrics import REJECTED
from transformer.request import Ask
from transformer.upstream import UpstreamError


@dataclass(frozen=True)
class Context:
    """What the answer needs besides the predictor's outputs."""

    ask: Ask
    snapshot: Snapshot
    session: date  # the as-of session the closes end at
    closes: np.ndarray  # the window sent to the predictor
    next_session: date | None
    note: str | None


def check_date(ask: Ask, today: date) -> None:
    """A 400 for an as-of date in the future, before any data is read (it is the client's mistake,
    whatever the data's state)."""
    if ask.as_of is not None and ask.as_of > today:
        raise InvalidInput(f"as_of {ask.as_of} is in the future (today is {today})")


def window(snapshot: Snapshot, ask: Ask, size: int, calendar: SessionCalendar, today: date) -> Context:
    """The `size` closes ending at the as-of session; a 400 naming the date when the data cannot.
    Data that does not reach the as-of session is the cache's to judge (stale, or refused past the
    bound): the closes then end where the data does."""
    series, as_of, note = snapshot.closes, ask.as_of, None
    count = len(series.values)
    if as_of is not None:
        check_date(ask, today)
        count = series.through(as_of)
        if count < size:
            raise InvalidInput(
                f"as_of {as_of} is outside the data: the model needs {size} sessions up to it and "
                f"{snapshot.source} has {count} ({series.first} to {series.last})"
            )
        if calendar.is_session(as_of) is False:
            note = f"{as_of} is no {calendar.name} session: answered from the previous session"
        elif snapshot.expected is not None and snapshot.expected < as_of and not snapshot.stale:
            note = f"the close of {as_of} has not settled yet: answered from {snapshot.expected}"
    elif count < size:
        raise StaleDataError(
            f"{snapshot.source} has {count} sessions of {ask.ticker}; the model needs {size}"
        )
    session = series.dates[count - 1].item()
    closes = series.values[count - size : count]
    return Context(ask, snapshot, session, closes, calendar.next_session(session), note)


def answer_of(
    context: Context,
    outputs: dict[str, float],
    version: str | None,
    calibration: dict[str, str] | None = None,
) -> dict:
    """One flat object: the as-of session, last close, forecast, change, bounds, which calibration made
    them, version, freshness, from the predictor's first-row values by output name, the version that
    answered and its response's calibration parameters."""
    outputs = dict(outputs)  # transformer.upstream checked them: MEAN among them, every value finite
    snap, last_close = context.snapshot, float(context.closes[-1])
    result = {
        "ticker": context.ask.ticker,
        "model_version": version,
        "as_of_requested": context.ask.as_of.isoformat() if context.ask.as_of else None,
        "as_of_session": context.session.isoformat(),
        "forecast_session": context.next_session.isoformat() if context.next_session else None,
        "last_close": last_close,
        MEAN: outputs.pop(MEAN),
    }
    result["change_pct"] = 100.0 * (result[MEAN] / last_close - 1.0)
    result.update(sorted(outputs.items()))  # lower_80, lower_95, upper_80, upper_95, ...
    result.update(calibration or {})  # calibration: online | bundle, calibration_reason, ...
    result.update(
        source=snap.source, data_through=snap.last_session.isoformat(),
        expected_session=snap.expected.isoformat() if snap.expected else None,
        fetched_at=snap.fetched_at.isoformat(), age_s=round(snap.age_s, 3), stale=snap.stale,
    )  # fmt: skip
    if snap.error:
        result["source_error"] = snap.error
    if context.note:
        result["note"] = context.note
    return result


def encode_v1(result: dict) -> dict:
    return {"predictions": [result]}


def encode_v2(result: dict, model_name: str, request_id: str | None) -> dict:
    """The answer as v2 `[1]` tensors (FP64 numbers, BYTES text, BOOL stale; absent fields left out),
    as kserve's `InferenceResponse` holds them (its route validates it; the fast path writes it)."""
    outputs = []
    for name, value in result.items():
        if value is not None and name != "model_version":
            datatype = "BOOL" if isinstance(value, bool) else "FP64" if isinstance(value, float) else "BYTES"
            data = [value if datatype != "BYTES" else str(value)]
            outputs.append(
                {"name": name, "shape": [1], "datatype": datatype, "parameters": None, "data": data}
            )
    return {"model_name": model_name, "model_version": result.get("model_version"),
            "id": request_id or uuid.uuid4().hex, "parameters": None, "outputs": outputs}  # fmt: skip


def refusal(exc: StaleDataError | UpstreamError) -> tuple[int, dict]:
    """Market data too old or missing, or the predictor unable to answer: 503/502 with the reason
    (counted and logged), whichever route answers."""
    status = exc.status if isinstance(exc, UpstreamError) else 503
    REJECTED.labels("stale_data" if isinstance(exc, StaleDataError) else "upstream").inc()
    level = logging.WARNING if status >= 500 else logging.INFO  # a relayed 4xx is the client's
    rejections.log(level, "refused (%d): %s", status, exc)
    return status, {"error": str(exc)}
