"""Validation-time choices that the bundle serves: the point weight and the predictive distribution.

The point weight is fitted on validation only (the network never trained on it). The distribution's
normalized scores are calibrated on validation plus the end of training (`calibration_part`): 250
scores leave the 80% level with a sampling error of ~2.5 pp in coverage, more than the +-2 pp the
intervals are held to. Both are judged on test.
"""

from __future__ import annotations

import numpy as np

from bundle.distribution import EWMA_LAMBDA, PredictiveDistribution, calibrate, ewma_sigma
from bundle.runtime import shrink
from training.splits import Part

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


def calibration_part(train: Part, validation: Part, sessions: int) -> Part:
    """All validation windows, preceded by the last training windows, `sessions` in all when train has them.

    Why training windows are fair here: the score is |log residual| / EWMA sigma of the window, and
    the served point is within noise of naive (its weight is chosen on validation; a daily log
    return is mostly unpredictable), so in-sample fit barely shrinks the residual while vol
    normalization makes recent scores nearly exchangeable. More scores cut the quantile's sampling
    error; older years are left out because the scores' law drifts slowly (regimes, tick size).
    """
    extra = min(max(sessions - len(validation), 0), len(train))
    if not extra:
        return validation
    return Part(
        np.concatenate([train.closes[-extra:], validation.closes]),
        np.concatenate([train.next_close[-extra:], validation.next_close]),
        train.dates[-extra:].append(validation.dates),
    )


def predictive_distribution(
    closes: np.ndarray, actual: np.ndarray, point: np.ndarray, floor: float, lam: float = EWMA_LAMBDA
) -> PredictiveDistribution:
    """Split conformal on calibration windows: |log(actual / point)| / EWMA sigma of each window."""
    sigma = ewma_sigma(closes, lam)
    return calibrate(np.log(np.asarray(actual) / np.asarray(point)), sigma, floor, lam)
