"""Walk-forward one-step-ahead metrics in price units, always beside the naive forecast and, for
intervals, beside the static split-conformal reference."""

from __future__ import annotations

import numpy as np

from bundle.distribution import PredictiveDistribution, conformal_quantile
from bundle.schema import ConformalInterval
from training.scores import SERVED_QUANTILES, interval_scores, symmetric_quantiles


def point_metrics(actual: np.ndarray, forecast: np.ndarray) -> dict[str, float]:
    err = np.asarray(forecast, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mape": float(np.mean(np.abs(err) / np.abs(actual)) * 100.0),
    }


def compare_with_naive(actual: np.ndarray, forecast: np.ndarray, last_close: np.ndarray) -> dict[str, float]:
    """Model and naive ("tomorrow = today") metrics on the same targets, and the MAE ratio."""
    model = point_metrics(actual, forecast)
    naive = point_metrics(actual, last_close)
    out = {**model, **{f"naive_{k}": v for k, v in naive.items()}}
    out["mae_ratio"] = model["mae"] / naive["mae"] if naive["mae"] > 0 else float("inf")
    return out


def conformal_intervals(
    val_actual: np.ndarray,
    val_forecast: np.ndarray,
    coverages: tuple[float, ...],
    test_actual: np.ndarray | None = None,
    test_forecast: np.ndarray | None = None,
) -> tuple[ConformalInterval, ...]:
    """Split conformal on relative (log) residuals of the validation part.

    q is the ceil((n + 1) c)-th smallest |log(actual / forecast)|, which gives finite-sample
    coverage >= c under exchangeability (the same rule as the served distribution's). Coverage is
    then measured on test.
    """
    scores = np.abs(np.log(np.asarray(val_actual) / np.asarray(val_forecast)))
    intervals = []
    for c in coverages:
        q = conformal_quantile(scores, c)
        interval = ConformalInterval(coverage=c, log_halfwidth=q)
        if test_actual is not None and test_forecast is not None:
            lo, hi = interval.bounds(test_forecast)
            covered = float(np.mean((test_actual >= lo) & (test_actual <= hi)))
            interval = interval.model_copy(update={"test_coverage": covered})
        intervals.append(interval)
    return tuple(intervals)


def distribution_bands(
    dist: PredictiveDistribution, closes: np.ndarray, point: np.ndarray, coverages: tuple[float, ...]
) -> tuple[dict[float, tuple[np.ndarray, np.ndarray]], dict[float, np.ndarray]]:
    """One-step bounds per coverage and the served quantiles, `[n]` each, from the distribution."""
    sigma = dist.sigma(closes)
    p = np.asarray(point, dtype=np.float64)[:, None]
    bounds = {c: tuple(b[:, 0] for b in dist.bounds(p, sigma, c)) for c in coverages}
    quantiles = {q: dist.quantile(p, sigma, q)[:, 0] for q in SERVED_QUANTILES}
    return bounds, quantiles


def distribution_scores(
    dist: PredictiveDistribution,
    closes: np.ndarray,
    actual: np.ndarray,
    point: np.ndarray,
    coverages: tuple[float, ...],
) -> dict[str, float]:
    """coverage / width / Winkler per level and pinball of the served (EWMA-conformal) distribution."""
    bounds, quantiles = distribution_bands(dist, closes, point, coverages)
    return interval_scores(actual, bounds, quantiles)


def static_scores(
    intervals: tuple[ConformalInterval, ...], actual: np.ndarray, point: np.ndarray
) -> dict[str, float]:
    """The same scores for the static split-conformal intervals (format 1's), prefixed `static_`.

    Its quantiles other than the interval ends are the log-linear interpolation of |residual|
    quantiles, so that pinball compares like with like on the served levels.
    """
    bounds = {i.coverage: i.bounds(point) for i in intervals}
    levels = np.array([0.0, *(i.coverage for i in intervals)])
    widths = np.array([0.0, *(i.log_halfwidth for i in intervals)])
    quantiles = symmetric_quantiles(point, lambda c: np.interp(c, levels, widths))
    return interval_scores(actual, bounds, quantiles, prefix="static_")
