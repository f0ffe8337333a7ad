"""The bundle as an MLflow pyfunc model, logged as code (MLflow's models-from-code: no pickle).

Training logs this file as the `python_model` of a LoggedModel, the bundle's files as its artifacts
and this `bundle` package as its `code_paths`, so `mlflow.pyfunc.load_model("models:/<name>@champion")`
and `mlflow models serve` work without this repository installed. Why a pyfunc and not MLflow's ONNX
flavor: the ONNX flavor serves the raw network output of one variant, in model space; the bundle's
answer (price-unit forecast shrunk toward naive, calibrated interval bounds, two variants) is
`OnnxForecaster`'s, which this model wraps, so every surface gives the same numbers.

Serving never runs this file: the predictor and the storage initializer read the bundle files
(`bundle.io.find_bundle`, `load_bundle`), never `pyfunc.load_model`.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel

from bundle.io import METADATA_ARTIFACT, VARIANT_PARAM, BundleError, load_bundle
from bundle.outputs import INPUT_NAME, columns
from bundle.runtime import OnnxForecaster


def closes_of(model_input) -> np.ndarray:
    """`[batch, window]` float64 closes from what pyfunc hands over: an array (a tensor input),
    `{"closes": array}` (a named tensor through the scoring server) or a DataFrame of closes."""
    if isinstance(model_input, dict):
        if INPUT_NAME not in model_input:
            raise MlflowException.invalid_parameter_value(f"the input is named {INPUT_NAME!r}")
        model_input = model_input[INPUT_NAME]
    if isinstance(model_input, pd.DataFrame):
        model_input = model_input.to_numpy()
    closes = np.asarray(model_input, dtype=np.float64)
    if closes.ndim == 1:
        closes = closes[None, :]
    if closes.ndim != 2 or closes.shape[0] == 0:
        raise MlflowException.invalid_parameter_value(
            f"closes must be [batch, window], got shape {list(closes.shape)}"
        )
    if not np.isfinite(closes).all() or (closes <= 0).any():
        raise MlflowException.invalid_parameter_value("closes must be finite prices > 0")
    return closes


class BundleModel(PythonModel):
    """D+1 forecast and interval bounds for each row of closes, one column per declared output."""

    def load_context(self, context) -> None:
        # Every file against its sha256, as the predictor checks it.
        self.bundle = load_bundle(Path(context.artifacts[METADATA_ARTIFACT]).parent)
        self.forecasters: dict[str, OnnxForecaster] = {}

    def _forecaster(self, variant: str) -> OnnxForecaster:
        if variant not in self.forecasters:
            try:
                self.forecasters[variant] = OnnxForecaster(self.bundle, variant)  # type: ignore[arg-type]
            except BundleError as exc:
                raise MlflowException.invalid_parameter_value(str(exc)) from exc
        return self.forecasters[variant]

    # np.ndarray: what pyfunc hands over for a tensor signature (and a hint MLflow validates nothing by).
    def predict(self, context, model_input: np.ndarray, params: dict | None = None) -> pd.DataFrame:
        forecaster = self._forecaster(str((params or {}).get(VARIANT_PARAM) or "fp32"))
        closes = closes_of(model_input)
        if closes.shape[1] != forecaster.window:
            raise MlflowException.invalid_parameter_value(
                f"each row holds {forecaster.window} closes (most recent last), got {closes.shape[1]}"
            )
        result = forecaster.forecast(closes, horizon=1)
        return pd.DataFrame(columns(result, forecaster.outputs))


mlflow.models.set_model(BundleModel())
