"""Realized one-step-ahead accuracy of a bundle on published closes (pure; no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from bundle import OnnxForecaster


@dataclass(frozen=True)
class Realized:
    sessions: int
    mae: float
    naive_mae: float
    coverage: dict[float, float]  # nominal -> realized
    latest: date

    @property
    def ratio(self) -> float:
        return self.mae / self.naive_mae if self.naive_mae > 0 else float("inf")


def realized(closes: np.ndarray, dates: list[date], forecaster: OnnxForecaster, sessions: int) -> Realized:
    """For each of the last `sessions` closes, the forecast the model would have served the evening
    before (from the `window` closes up to that evening) against the close actually published."""
    window = forecaster.window
    closes = np.asarray(closes, dtype=np.float64)
    if len(closes) < window + sessions:
        raise ValueError(f"need {window + sessions} closes for {sessions} sessions, got {len(closes)}")
    targets = np.arange(len(closes) - sessions, len(closes))
    windows = np.stack([closes[t - window : t] for t in targets])
    actual = closes[targets]
    result = forecaster.forecast(windows, horizon=1)
    mean = result.mean[:, 0]
    coverage = {
        c: float(np.mean((actual >= result.lower[c][:, 0]) & (actual <= result.upper[c][:, 0])))
        for c in result.lower
    }
    return Realized(
        sessions=sessions,
        mae=float(np.mean(np.abs(mean - actual))),
        naive_mae=float(np.mean(np.abs(windows[:, -1] - actual))),
        coverage=coverage,
        latest=dates[-1],
    )
