"""Daily variance proxies and the HAR scale of the online intervals (`bundle.online`).

- **Proxy**: Garman-Klass with the overnight gap (open, high, low, close: ~5x less noisy than a
  squared return), or the squared close-to-close return where a session has no usable range.
- **HAR** (Corsi 2009): the next squared close-to-close log return on the day, week (5), month (22)
  and EWMA (lambda 0.94) averages of a proxy, fitted by weighted least squares (weights 1 / fitted
  variance: squared returns are heteroscedastic) with non-negative slopes.

A module of its own because these are the numerics; the state that carries their results is
`bundle.online`'s, and `bench.interval_methods` compares proxies with them directly. Numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from bundle.distribution import EWMA_LAMBDA

#: The HAR terms, in coefficient order: intercept, last day, last 5 days, last 22 days, EWMA.
HAR_TERMS = ("intercept", "day", "week", "month", "ewma")
WEEK, MONTH = 5, 22


# -- daily variance proxies ------------------------------------------------------------------------


def range_variance(
    open_: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, prev_close: np.ndarray
) -> np.ndarray:
    """Garman-Klass variance of each session with the overnight gap (log units).

    `(ln O/C_prev)^2 + 0.5 (ln H/L)^2 - (2 ln 2 - 1) (ln C/O)^2`. A session with no or inconsistent
    range (missing values, high below open or close, low above them) falls back to the squared
    close-to-close return, the only proxy a closes-only source has.
    """
    o, h, lo, c, p = (np.asarray(a, dtype=np.float64) for a in (open_, high, low, close, prev_close))
    r2 = np.log(c / p) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        gk = np.log(o / p) ** 2 + 0.5 * np.log(h / lo) ** 2 - (2.0 * math.log(2.0) - 1.0) * np.log(c / o) ** 2
        valid = np.isfinite(gk) & (o > 0) & (lo > 0) & (h >= np.maximum(o, c)) & (lo <= np.minimum(o, c))
    return np.where(valid, np.maximum(gk, 0.0), r2)


# -- the HAR scale ---------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def term_weights(m: int, lam: float = EWMA_LAMBDA) -> np.ndarray:
    """`[4, m]`: each HAR slope term as weights on the last m daily variances (oldest first).

    The EWMA term is the bundle's `ewma_sigma` squared (started at the mean, closed form), so on
    squared returns it is exactly what the bundle serves.
    """
    if m < MONTH:
        raise ValueError(f"a HAR scale needs at least {MONTH} daily variances, got {m}")
    w = np.zeros((4, m))
    w[0, -1] = 1.0
    w[1, -WEEK:] = 1.0 / WEEK
    w[2, -MONTH:] = 1.0 / MONTH
    w[3] = (1.0 - lam) * lam ** np.arange(m - 1, -1, -1, dtype=np.float64) + lam**m / m
    w.flags.writeable = False
    return w


def har_features(variances: np.ndarray) -> np.ndarray:
    """`[n, m]` windows of daily variances -> `[n, 5]` HAR regressors (with the intercept's 1)."""
    v = np.atleast_2d(np.asarray(variances, dtype=np.float64))
    return np.column_stack([np.ones(len(v)), v @ term_weights(v.shape[1]).T])


def har_variance(coefficients: Sequence[float], variances: np.ndarray) -> np.ndarray:
    """`[n, m]` windows -> `[n]` forecast variance of the next close-to-close log return."""
    b = np.asarray(coefficients, dtype=np.float64)
    v = np.atleast_2d(np.asarray(variances, dtype=np.float64))
    return b[0] + v @ (b[1:] @ term_weights(v.shape[1]))


def fit_har(windows: np.ndarray, target: np.ndarray, iterations: int = 3) -> tuple[float, ...]:
    """Weighted least squares of `target` (next squared return) on the HAR terms of `windows`.

    Weights 1 / fitted variance (iterated): a squared return's noise grows with its variance, and
    unweighted least squares is ruled by a few crash days. A negative slope is dropped (set to 0)
    and the rest refitted, so every forecast is an intercept plus non-negative shares of the past.
    """
    x, y = har_features(windows), np.asarray(target, dtype=np.float64)
    floor = 1e-3 * float(np.mean(y)) + 1e-12
    active = np.ones(x.shape[1], dtype=bool)
    while True:
        b = np.zeros(x.shape[1])
        weight = np.ones(len(y))
        for _ in range(iterations + 1):
            sol, *_ = np.linalg.lstsq(x[:, active] * weight[:, None], y * weight, rcond=None)
            b[:] = 0.0
            b[active] = sol
            weight = 1.0 / np.maximum(x @ b, floor)
        negative = np.flatnonzero(active[1:] & (b[1:] < 0)) + 1
        if not len(negative):
            break
        active[negative[np.argmin(b[negative])]] = False
    if b[0] <= 0:  # keep a positive intercept: a forecast never collapses to 0 on a quiet window
        b[0] = floor
    return tuple(float(v) for v in b)
