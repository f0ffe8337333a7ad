"""Typed schema of `metadata.json`, the single description of a bundle."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from bundle.distribution import PredictiveDistribution

#: 2 adds `point_weight` (shrinkage toward naive) and `distribution` (volatility-adaptive intervals
#: and quantiles). Format 1 bundles still load and serve as before (static intervals, raw forecast).
BUNDLE_FORMAT_VERSION = 2
SUPPORTED_FORMATS = (1, 2)
METADATA_FILE = "metadata.json"
ONNX_INPUT = "x"
ONNX_OUTPUT = "y"

Target = Literal["log_return", "level"]
Variant = Literal["fp32", "int8"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scaler(_Strict):
    """Affine scaler `z = (x - center) / scale`, fitted on the training part only.

    `minmax` (the seed's MinMaxScaler) and `standard` are both this form, so serving needs no
    scikit-learn and no pickle.
    """

    kind: Literal["minmax", "standard"]
    center: float
    scale: PositiveFloat


class FeatureSpec(_Strict):
    """How raw closes become model inputs and how the model output becomes a price.

    - `level` (the seed's formulation): inputs are the scaled closes of the window, the output is
      the scaled next close.
    - `log_return`: inputs are the scaled log returns inside the window, the output is the scaled
      log return of the next close over the last one; price = last close * exp(return).
    """

    window: PositiveInt = Field(description="closing prices per request (most recent last)")
    target: Target
    scaler: Scaler

    @property
    def steps(self) -> int:
        """Time steps the ONNX model sees: returns lose one step."""
        return self.window - 1 if self.target == "log_return" else self.window


class ConformalInterval(_Strict):
    """Split-conformal interval `[yhat * exp(-q), yhat * exp(q)]` (static: the same width always).

    `q` is a quantile of |log(actual / forecast)| on validation: relative residuals keep the
    interval valid when the price level drifts between validation and serving. Format 1 serves it;
    format 2 keeps it as the static reference (what the served distribution is compared with), and
    `test_coverage` is then the static interval's.
    """

    coverage: float = Field(gt=0, lt=1, description="nominal coverage, e.g. 0.8")
    log_halfwidth: float = Field(ge=0)
    test_coverage: float | None = Field(default=None, description="empirical coverage on test")

    def bounds(self, forecast: np.ndarray, widen: np.ndarray | float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """`(forecast * exp(-q * widen), forecast * exp(q * widen))` in price units."""
        q = self.log_halfwidth * np.asarray(widen, dtype=np.float64)
        point = np.asarray(forecast, dtype=np.float64)
        return point * np.exp(-q), point * np.exp(q)


def check_file_name(name: str) -> str:
    """A file a bundle names is a plain file name in the bundle's own folder: no directory part (so
    no `..` and no absolute path), no control character, not `metadata.json` itself. Whoever writes
    or reads a bundle resolves it inside the folder too (bundle.io: a symlink may not leave it)."""
    plain = name not in ("", ".", "..") and not any(c in "/\\" or ord(c) < 32 or ord(c) == 127 for c in name)
    if not plain or name == METADATA_FILE:
        raise ValueError(
            f"{name!r} is not a file name inside the bundle's folder (no directory, '..', absolute path, "
            f"control character or {METADATA_FILE})"
        )
    return name


class VariantFile(_Strict):
    file: str = Field(description="a file name in the bundle's folder (no directory part)")
    sha256: str
    nodes: dict[str, int] = Field(default_factory=dict, description="op type -> count")

    @field_validator("file")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        return check_file_name(name)


class SplitRange(_Strict):
    start: date
    end: date
    sessions: int


class BundleMetadata(_Strict):
    format_version: Literal[1, 2] = Field(
        1, description="1: static intervals; 2: point_weight + distribution (what training writes)"
    )
    model_name: str
    ticker: str
    source: str = Field(description="where the training data came from, in words")
    trained_at: datetime
    data_start: date
    data_end: date
    splits: dict[Literal["train", "validation", "test"], SplitRange]
    features: FeatureSpec
    intervals: tuple[ConformalInterval, ...] = Field(description="served coverages; static reference")
    point_weight: float = Field(
        1.0, ge=0, le=1, description="served log return = weight x the network's (0 = naive)"
    )
    distribution: PredictiveDistribution | None = Field(
        None, description="format 2: the served predictive distribution (None in format 1)"
    )
    metrics: dict[str, float] = Field(description="test metrics in price units, with naive")
    variants: dict[Variant, VariantFile]
    onnx_input: str = ONNX_INPUT
    onnx_output: str = ONNX_OUTPUT
    packages: dict[str, str] = Field(default_factory=dict)
    hyperparameters: dict[str, float | int | str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _infer_format(cls, data):
        """Unstated format: 2 when a distribution is given, else 1 (metadata built in code)."""
        if isinstance(data, dict) and "format_version" not in data:
            data = {**data, "format_version": 2 if data.get("distribution") is not None else 1}
        return data

    @model_validator(mode="after")
    def _format(self) -> BundleMetadata:
        if self.format_version == 2 and self.distribution is None:
            raise ValueError("bundle format 2 needs a `distribution`")
        if self.format_version == 1 and (self.distribution is not None or self.point_weight != 1.0):
            raise ValueError("bundle format 1 has no `distribution` or `point_weight`: use format 2")
        if self.distribution is not None:
            levels = set(self.distribution.levels)
            missing = [i.coverage for i in self.intervals if i.coverage not in levels]
            if missing:
                raise ValueError(f"coverages {missing} are not calibrated levels of the distribution")
        return self
