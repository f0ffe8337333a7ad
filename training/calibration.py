"""Validation-time choices that the bundle serves: the point weight and the predictive distribution.

Both are fitted on the validation part only (the network never trained on it), and judged on test.
"""

from __future__ import annotations

import numpy as np

from bundle.distribution import EWMA_LAMBDA, PredictiveDistribution, calibrate, ewma_sigma
from bundle.runtime import shrink

#: Weights tried for the point forecast (0 = naive, 1 = the network's raw forecast).
WEIGHTS = np.round(np.linspace(0.0, 1.0, 101), 2)
#: sigma never goes below this share of the training returns' standard deviation (constant windows).
FLOOR_SHARE = 0.05


def point_weight(actual: np.ndarray, last_close: np.ndarray, raw: np.ndarray) -> float:
    """The weight in [0, 1] minimizing validation MAE of `last * (raw / last) ** w`.

    MAE, because MAE against naive is the metric users read. Ties go to the smaller weight (toward
    naive): without validation evidence of skill the served forecast is the naive one.
    """
    y, last, f = (np.asarray(a, dtype=np.float64) for a in (actual, last_close, raw))
    maes = np.array(
        [np.mean(np.abs(shrink(f, last, w) - y)) if w else np.mean(np.abs(last - y)) for w in WEIGHTS]
    )
    return float(WEIGHTS[int(np.argmin(maes))])


def sigma_floor(train_closes: np.ndarray) -> float:
    """A small positive floor for sigma, from the training returns (scale-free)."""
    closes = np.asarray(train_closes, dtype=np.float64)
    returns = np.diff(np.log(closes[:, -1])) if closes.ndim == 2 else np.diff(np.log(closes))
    return max(FLOOR_SHARE * float(np.std(returns)), 1e-6)


def predictive_distribution(
    closes: np.ndarray, actual: np.ndarray, point: np.ndarray, floor: float, lam: float = EWMA_LAMBDA
) -> PredictiveDistribution:
    """Split conformal on validation windows: |log(actual / point)| / EWMA sigma of each window."""
    sigma = ewma_sigma(closes, lam)
    return calibrate(np.log(np.asarray(actual) / np.asarray(point)), sigma, floor, lam)
