"""Validation-time choices that the bundle serves: the point weight and the predictive distribution.

The point weight is fitted on validation only (the network never trained on it) and served only
when its gain over naive there is unlikely under noise. The distribution's
normalized scores are calibrated on validation plus the end of training (`calibration_part`): 250
scores leave the 80% level with a sampling error of ~2.5 pp in coverage, more than the +-2 pp the
intervals are held to. Both are judged on test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bundle.distribution import EWMA_LAMBDA, PredictiveDistribution, calibrate, ewma_sigma
from bundle.runtime import shrink
from training.evidence import diebold_mariano_less
from training.splits import Part

#: Weights tried for the point forecast (0 = naive, 1 = the network's raw forecast).
WEIGHTS = np.round(np.linspace(0.0, 1.0, 101), 2)
#: sigma never goes below this share of the training returns' standard deviation (constant windows).
FLOOR_SHARE = 0.05
#: One-sided significance level a validation gain over naive must reach before the point leaves naive.
EVIDENCE_LEVEL = 0.05


@dataclass(frozen=True)
class PointWeight:
    """The served weight and the evidence behind it."""

    weight: float  # what the bundle serves: `best` if the evidence holds, else 0 (naive)
    best: float  # the validation-MAE argmin over WEIGHTS
    p_value: float  # one-sided DM p of `best` against naive on validation (1.0 when best is 0)


def point_weight(
    actual: np.ndarray, last_close: np.ndarray, raw: np.ndarray, level: float = EVIDENCE_LEVEL
) -> float:
    """The served weight in [0, 1]: see `choose_point_weight`."""
    return choose_point_weight(actual, last_close, raw, level).weight


def choose_point_weight(
    actual: np.ndarray, last_close: np.ndarray, raw: np.ndarray, level: float = EVIDENCE_LEVEL
) -> PointWeight:
    """The weight minimizing validation MAE of `last * (raw / last) ** w`, kept only on evidence.

    MAE, because MAE against naive is the metric users read; ties go to the smaller weight. The
    argmin always finds some gain on a validation year, mostly noise, so it is served only when a
    one-sided Diebold-Mariano test (absolute errors, Newey-West variance) rejects "no better than
    naive" at `level`; otherwise the weight is 0 and the served forecast is exactly naive. The test
    is run on the selected weight, so its p is optimistic (selection over one correlated
    dimension); the level is a bar to clear, not an error rate.
    """
    y, last, f = (np.asarray(a, dtype=np.float64) for a in (actual, last_close, raw))
    errors = [np.abs(shrink(f, last, w) - y) if w else np.abs(last - y) for w in WEIGHTS]
    best = int(np.argmin([e.mean() for e in errors]))
    if best == 0:
        return PointWeight(0.0, 0.0, 1.0)
    p = diebold_mariano_less(errors[best], errors[0])
    weight = float(WEIGHTS[best]) if p < level else 0.0
    return PointWeight(weight, float(WEIGHTS[best]), p)


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
