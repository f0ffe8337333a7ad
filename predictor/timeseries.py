"""KServe's time-series forecast API (`POST /v1/timeseries/forecast`, `GET /v1/timeseries/models`)
for bundle models; kserve wires its schema only to its own HuggingFace model class.

Quantiles come from the bundle's predictive distribution (format 2): any level in (0, 1), monotone
in the level, equal to the v2 interval bounds at (1 -+ c) / 2, and 0.5 is the point forecast. The
default levels are the declared outputs' (bundle.outputs). Format 1 bundles give only those levels.
Horizons > 1 are recursive, and the spread grows as sqrt(h) (see bundle.runtime.OnnxForecaster).
"""

from __future__ import annotations

import math
import time
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
from fastapi import Request
from kserve.protocol.rest.timeseries.types import (
    FREQUENCY_MAP,
    ForecastOutput,
    ForecastRequest,
    ForecastResponse,
    Status,
    TimeSeriesForecast,
    TimeSeriesType,
)
from pydantic import ValidationError

from bundle.runtime import LEVEL_TOLERANCE
from predictor.codecs import check_closes, finite_forecast
from predictor.model import forecast_models
from predictor.settings import PredictorSettings
from serving.errors import Rejected, body_error, error_param
from serving.kserve_seam import ServingDataPlane
from serving.text import refuse_lone_surrogates

if TYPE_CHECKING:
    from predictor.model import ForecastModel, Served


def available_quantiles(served: Served) -> list[float]:
    """The default quantiles: those of the declared outputs (0.5 and both ends of every interval)."""
    return sorted({round(out.quantile, 6) for out in served.forecaster.outputs})


def _unavailable(served: Served, wanted: list[float]) -> list[float]:
    """Format 2 gives any level in (0, 1). Format 1 gives its declared levels only, matched up to
    float noise (0.1 is (1 - 0.8) / 2), never to a rounding: 0.1000001 is not 0.1."""
    if served.forecaster.bundle.metadata.distribution is not None:
        return [q for q in wanted if not 0.0 < q < 1.0]
    default = available_quantiles(served)
    return [q for q in wanted if not any(math.isclose(q, d, abs_tol=LEVEL_TOLERANCE) for d in default)]


def _next_timestamp(start: str | None, frequency, steps: int, param: str) -> str:
    if not start:
        return ""
    try:
        return (datetime.fromisoformat(start) + FREQUENCY_MAP[frequency.value](steps)).isoformat()
    except ValueError as exc:
        raise Rejected("timestamp", f"start_timestamp {start!r} is not ISO 8601: {exc}", param) from exc
    except OverflowError as exc:  # e.g. 9999-12-31 plus a few days
        raise Rejected(
            "timestamp", f"start_timestamp {start!r} plus {steps} steps is past year 9999", param
        ) from exc


def forecast(
    model: ForecastModel, request: ForecastRequest, max_horizon: int, max_batch: int
) -> ForecastResponse:
    served = model.require()
    window = served.forecaster.window
    horizon = request.options.horizon
    if not 1 <= horizon <= max_horizon:
        raise Rejected("horizon", f"horizon {horizon} is outside 1..{max_horizon}", "options.horizon")
    if not request.inputs:
        raise Rejected("shape", "inputs is empty: send at least one series", "inputs")
    available = available_quantiles(served)
    wanted = request.options.quantiles if request.options.quantiles is not None else available
    missing = _unavailable(served, wanted)
    if missing:
        gives = (
            "any level in (0, 1)"
            if served.forecaster.bundle.metadata.distribution is not None
            else f"{available} (from its format 1 bundle's static intervals)"
        )
        message = f"quantiles {missing} are not available; this model gives {gives}"
        raise Rejected("quantile", message, "options.quantiles")
    rows = []
    for i, item in enumerate(request.inputs):
        if item.type != TimeSeriesType.UNIVARIATE or any(isinstance(v, list) for v in item.series):
            raise Rejected("rank", f"series {item.name!r}: only univariate series are supported",
                           f"inputs.{i}.series")  # fmt: skip
        if len(item.series) < window:
            raise Rejected("window", f"series {item.name!r} has {len(item.series)} values; "
                           f"this model needs at least {window} (the last {window} are used)",
                           f"inputs.{i}.series")  # fmt: skip
        series = check_closes(np.asarray(item.series, dtype=np.float64), 1, len(item.series), 1)  # all of it
        rows.append(series[0, -window:])
    closes = check_closes(np.concatenate(rows), len(rows), window, max_batch)
    result = finite_forecast(served.forecaster, closes, horizon, served.calibration.distribution)
    with np.errstate(over="ignore", invalid="ignore"):
        values = {q: served.forecaster.quantile(result, q) for q in wanted}
    overflow = [q for q, v in values.items() if not np.isfinite(v).all()]
    if overflow:
        raise Rejected(
            "overflow", f"quantile {overflow[0]} is not finite for these closes: prices are too extreme"
        )
    outputs = []
    for i, item in enumerate(request.inputs):
        quantiles = {str(q): values[q][i].tolist() for q in wanted}
        content = TimeSeriesForecast(
            type=TimeSeriesType.UNIVARIATE, name=item.name, mean_forecast=result.mean[i].tolist(),
            frequency=item.frequency, quantiles=quantiles,
            start_timestamp=_next_timestamp(item.start_timestamp, item.frequency, len(item.series),
                                            f"inputs.{i}.start_timestamp"),
        )  # fmt: skip
        outputs.append(ForecastOutput(type="time_series_forecast", id=item.name,
                                      status=Status.COMPLETED, content=[content]))  # fmt: skip
    return ForecastResponse(
        id=str(uuid.uuid4()), created_at=int(time.time()), status=Status.COMPLETED,
        model=model.name, outputs=outputs, parameters=served.calibration.parameters,
    )  # fmt: skip


def strict_forecast_request(body: bytes) -> ForecastRequest:
    """KServe's time-series request without pydantic's coercions: "1" or true is not a price."""
    try:
        return ForecastRequest.model_validate_json(body, strict=True)
    except ValidationError as exc:
        refuse_lone_surrogates(body)  # jiter refuses `"\ud800"` with a position: name the field
        raise Rejected("malformed", body_error(exc.errors()), error_param(exc.errors())) from exc


class Routes:
    """The API's two routes on a server's app, over the forecast models of its data plane."""

    def __init__(self, dataplane: ServingDataPlane, settings: PredictorSettings) -> None:
        self.dataplane, self.settings = dataplane, settings

    def register(self, app) -> None:
        app.add_api_route("/v1/timeseries/forecast", self.forecast, methods=["POST"],
                          response_model=ForecastResponse, response_model_exclude_none=True)  # fmt: skip
        app.add_api_route(
            "/v1/timeseries/models", self.forecast_model_names, methods=["GET"], response_model=list[str]
        )

    async def forecast(self, request: ForecastRequest, raw: Request) -> ForecastResponse:
        request = strict_forecast_request(await raw.body())  # FastAPI's parse takes "1" and true
        model = self.dataplane.get_model_from_registry(request.model)
        if not forecast_models([model]):
            raise NotImplementedError(f"model {request.model} has no time-series forecast")
        return forecast(model, request, self.settings.max_horizon, self.settings.max_batch)

    async def forecast_model_names(self) -> list[str]:
        """kserve's time-series API lists its models by name."""
        return [m.name for m in forecast_models(list(self.dataplane.model_registry.get_models().values()))]
