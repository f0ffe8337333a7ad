"""The served predictive distribution: conformal scores normalized by the window's EWMA volatility.

Why this form: daily returns are close to unpredictable in level but strongly predictable in scale
(volatility clusters). The next log return is modelled as `point + sigma(window) * z`, where
`sigma` is a RiskMetrics EWMA (lambda = 0.94) of the request's own log returns (stateless: computed
per request from what it carries) and `z` is a calibrated symmetric score. The law of |z| is stored
as split-conformal quantiles on a grid of central coverages (the ceil((n + 1) c)-th
smallest of n validation scores), so the 80% and 95% bounds are conformal intervals and any other
quantile is a monotone interpolation of the same object. Beyond the last grid level the tail is
extended exponentially (a Laplace-like tail), which keeps every quantile in (0, 1) finite.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

EWMA_LAMBDA = 0.94
#: sigma never exceeds this (daily log-return units, ~65% a day): beyond it nothing more is known,
#: and a valid but absurd window (the fuzzer's closes alternating 1e-320 and 1e308) must still get a
#: bounded interval width around its point forecast.
SIGMA_CAP = 0.5
#: Central coverages whose |z| quantile is calibrated (must include every served interval level).
LEVELS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.975, 0.99)


def ewma_sigma(closes: np.ndarray, lam: float = EWMA_LAMBDA) -> np.ndarray:
    """`[b, window]` closes -> `[b]` EWMA volatility of the next daily log return.

    The recursion `s2_t = lam * s2_{t-1} + (1 - lam) * r_t^2` is started at the window's mean
    squared return (with 59 returns the start keeps only lam^59 ~ 2.6% of the weight), and is
    written in closed form so a batch costs one matrix-vector product.
    """
    # pragma: no mutate start (equivalent: np.diff's default axis; immaterial: 1 is -1 for 2-D closes)
    r = np.diff(np.log(np.asarray(closes, dtype=np.float64)), axis=-1)
    # pragma: no mutate end
    m = r.shape[-1]  # pragma: no mutate (immaterial: 1 is -1 for [batch, window] closes)
    r2 = r**2
    start = r2.mean(axis=-1)  # pragma: no mutate (immaterial: 1 is -1 for [batch, window] closes)
    return np.sqrt(lam**m * start + r2 @ _ewma_weights(lam, m))


@lru_cache(maxsize=64)
def _ewma_weights(lam: float, m: int) -> np.ndarray:
    """The recursion's weights for m returns: one window length per bundle, so computed once, not
    per request (read-only, shared)."""
    weights = (1.0 - lam) * lam ** np.arange(m - 1, -1, -1, dtype=np.float64)
    weights.flags.writeable = False
    return weights


@lru_cache(maxsize=1024)
def _signed_halfwidth(distribution: PredictiveDistribution, q: float) -> float:
    """`halfwidth(|2q - 1|)` with the sign of `q - 0.5`: per bundle and quantile, not per request
    (a served bundle asks for the same few quantiles on every request; this was ~16% of its CPU)."""
    return float(distribution.halfwidth(abs(2.0 * q - 1.0))) * math.copysign(1.0, q - 0.5)


def conformal_quantile(scores: np.ndarray, coverage: float) -> float:
    """The split-conformal quantile: the ceil((n + 1) c)-th smallest of n scores (capped at n).

    Under exchangeability a new score falls at or below it with probability >= c.
    """
    ordered = np.sort(np.asarray(scores, dtype=np.float64))
    k = min(math.ceil((len(ordered) + 1) * coverage - 1e-9), len(ordered))
    return float(ordered[k - 1])


class PredictiveDistribution(BaseModel):
    """Location (the point forecast) + EWMA scale + calibrated symmetric |z| quantiles."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field("ewma_conformal", pattern="^ewma_conformal$")
    ewma_lambda: float = Field(EWMA_LAMBDA, gt=0, lt=1)
    sigma_floor: PositiveFloat = Field(description="lower bound on sigma (daily log-return units)")
    levels: tuple[float, ...] = Field(description="central coverages, increasing, in (0, 1)")
    score_quantiles: tuple[float, ...] = Field(description="calibrated |z| quantile at each level")
    tail_slope: float = Field(gt=0, description="|z| grows by this per unit of log(1 / (1 - c))")
    calibration_sessions: PositiveInt

    @model_validator(mode="after")
    def _check(self) -> PredictiveDistribution:
        lv, sq = np.asarray(self.levels), np.asarray(self.score_quantiles)
        if len(lv) < 2 or len(lv) != len(sq):
            raise ValueError("levels and score_quantiles need the same length (>= 2)")
        if not (np.all(np.diff(lv) > 0) and lv[0] > 0 and lv[-1] < 1):
            raise ValueError("levels must be increasing in (0, 1)")
        if not (np.all(np.diff(sq) >= 0) and sq[0] >= 0 and np.all(np.isfinite(sq))):
            raise ValueError("score_quantiles must be finite, >= 0 and non-decreasing")
        return self

    def sigma(self, closes: np.ndarray) -> np.ndarray:
        """`[b, window]` -> `[b]` scale of the next log return, floored (a constant window has 0)
        and capped at SIGMA_CAP."""
        return np.clip(
            ewma_sigma(closes, self.ewma_lambda), self.sigma_floor, max(SIGMA_CAP, self.sigma_floor)
        )

    def halfwidth(self, coverage: np.ndarray | float) -> np.ndarray:
        """Normalized half-width (units of sigma) of the central interval of `coverage` in [0, 1)."""
        c = np.asarray(coverage, dtype=np.float64)  # pragma: no mutate (immaterial: called with a float)
        lv = np.concatenate([[0.0], self.levels])
        sq = np.concatenate([[0.0], self.score_quantiles])
        inside = np.interp(c, lv, sq)
        last = lv[-1]
        with np.errstate(divide="ignore"):  # pragma: no mutate (equivalent: no input divides by 0 here)
            tail = sq[-1] + self.tail_slope * np.log((1.0 - last) / np.maximum(1.0 - c, 1e-300))
        # pragma: no mutate start (equivalent: at c == last the tail equals sq[-1], the inside value)
        return np.where(c > last, tail, inside)
        # pragma: no mutate end

    def quantile(self, point: np.ndarray, sigma: np.ndarray, q: float, widen: np.ndarray | float = 1.0):
        """Quantile `q` in (0, 1) of the price, `point * exp(sign * halfwidth(|2q - 1|) * sigma * widen)`.

        `point` is `[b, h]`, `sigma` `[b]`, `widen` `[h]` (sqrt(h) for h steps ahead).
        """
        return self._at(np.asarray(point, dtype=np.float64), _scale(sigma, widen), q)

    def _at(self, point: np.ndarray, scale: np.ndarray, q: float) -> np.ndarray:
        if not 0.0 < q < 1.0:
            raise ValueError(f"quantile {q} is outside (0, 1)")
        return point * np.exp(_signed_halfwidth(self, q) * scale)

    def bounds(self, point: np.ndarray, sigma: np.ndarray, coverage: float, widen=1.0):
        """`(lower, upper)` of the central interval of `coverage`: the (1 -+ c) / 2 quantiles."""
        point, scale = np.asarray(point, dtype=np.float64), _scale(sigma, widen)
        return self._at(point, scale, (1.0 - coverage) / 2.0), self._at(point, scale, (1.0 + coverage) / 2.0)


def _scale(sigma: np.ndarray, widen: np.ndarray | float) -> np.ndarray:
    """`[b, h]` log-scale of each step: sigma per row times the horizon's widening."""
    return np.asarray(sigma, dtype=np.float64)[:, None] * np.asarray(widen, dtype=np.float64)


def calibrate(
    log_residuals: np.ndarray, sigma: np.ndarray, sigma_floor: float, lam: float = EWMA_LAMBDA
) -> PredictiveDistribution:
    """Split conformal on validation: |log(actual / point)| / sigma at each level of LEVELS."""
    s = np.maximum(np.asarray(sigma, dtype=np.float64), sigma_floor)
    scores = np.abs(np.asarray(log_residuals, dtype=np.float64)) / s
    n = len(scores)
    quantiles = np.maximum.accumulate([conformal_quantile(scores, c) for c in LEVELS])
    # Exponential tail through the last two decades of the grid (0.9 -> 0.99), kept positive.
    i90, i99 = LEVELS.index(0.9), len(LEVELS) - 1
    slope = (quantiles[i99] - quantiles[i90]) / math.log((1 - LEVELS[i90]) / (1 - LEVELS[i99]))
    return PredictiveDistribution(
        ewma_lambda=lam,
        sigma_floor=sigma_floor,
        levels=LEVELS,
        score_quantiles=tuple(float(v) for v in quantiles),
        tail_slope=max(float(slope), 1e-3),
        calibration_sessions=n,
    )
