"""The declared served outputs: one list of names, datatypes, shapes and levels.

v2 and v1 encoding, model metadata, the time-series API's quantiles, the training forecasts table,
the plot and the metric names all read this module, so adding an output or an interval level is one
edit here (plus its tests) instead of one per protocol.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from bundle.runtime import Forecast

INPUT_NAME = "closes"
INPUT_DATATYPE = "FP64"  # advertised in model metadata
INPUT_DATATYPES = ("FP32", INPUT_DATATYPE)  # accepted
OUTPUT_DATATYPE = "FP64"
MEAN = "forecast"
Kind = Literal["mean", "lower", "upper"]


def level_label(coverage: float) -> str:
    """0.8 -> "80", 0.975 -> "97.5": the suffix of interval outputs, metric names and labels."""
    return f"{coverage * 100:g}"


@dataclass(frozen=True)
class Output:
    """One served output: `[batch]` per request row (v2, v1) or `[batch, horizon]` (time series)."""

    name: str
    kind: Kind
    coverage: float | None = None  # the interval's nominal coverage; None for the point forecast
    datatype: str = OUTPUT_DATATYPE

    @property
    def quantile(self) -> float:
        """The predictive quantile this output is: the interval of coverage c spans (1-c)/2..(1+c)/2."""
        if self.coverage is None:
            return 0.5
        return (1 - self.coverage) / 2 if self.kind == "lower" else (1 + self.coverage) / 2

    def values(self, forecast: Forecast) -> np.ndarray:
        """This output's `[batch, horizon]` values in price units."""
        if self.coverage is None:
            return forecast.mean
        return (forecast.lower if self.kind == "lower" else forecast.upper)[self.coverage]

    def metadata(self) -> dict:
        """The v2 model-metadata entry."""
        return {"name": self.name, "datatype": self.datatype, "shape": [-1]}


def outputs(coverages: Iterable[float]) -> tuple[Output, ...]:
    """The point forecast, then `lower_XX`, `upper_XX` per coverage, narrowest interval first."""
    declared = [Output(MEAN, "mean")]
    for coverage in sorted(coverages):
        label = level_label(coverage)
        declared += [Output(f"lower_{label}", "lower", coverage), Output(f"upper_{label}", "upper", coverage)]
    return tuple(declared)


def input_metadata(window: int | None) -> dict:
    """The v2 model-metadata entry of the one input (window unknown until a bundle is loaded)."""
    return {"name": INPUT_NAME, "datatype": INPUT_DATATYPE, "shape": [-1, window or -1]}


def columns(forecast: Forecast, declared: Iterable[Output], step: int = 0) -> dict[str, np.ndarray]:
    """`{output name: [batch] values at horizon step}`: one row per request row, in declared order."""
    return {out.name: out.values(forecast)[:, step] for out in declared}
