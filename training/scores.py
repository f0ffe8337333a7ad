"""Proper scores for interval and quantile forecasts (price units), used by training, bench, monitor.

Coverage alone rewards a uselessly wide interval; the Winkler (interval) score and the pinball loss
are proper: they are minimized in expectation by the true quantiles, so they rank methods fairly.
"""

from __future__ import annotations

import numpy as np

from bundle.outputs import level_label

#: The quantiles the time-series API serves by default; the pinball loss is averaged over them.
SERVED_QUANTILES = (0.025, 0.1, 0.5, 0.9, 0.975)


def coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    y = np.asarray(actual, dtype=np.float64)
    return float(np.mean((y >= lower) & (y <= upper)))


def winkler(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray, level: float) -> float:
    """Mean interval score of central `level` intervals: width + (2 / alpha) x distance outside."""
    y = np.asarray(actual, dtype=np.float64)
    alpha = 1.0 - level
    below = np.maximum(lower - y, 0.0)
    above = np.maximum(y - upper, 0.0)
    return float(np.mean((upper - lower) + 2.0 / alpha * (below + above)))


def pinball(actual: np.ndarray, quantiles: dict[float, np.ndarray]) -> float:
    """Mean pinball (quantile) loss over the given levels: `q -> forecast quantile [n]`."""
    y = np.asarray(actual, dtype=np.float64)
    losses = []
    for q, f in quantiles.items():
        d = y - np.asarray(f, dtype=np.float64)
        losses.append(np.mean(np.maximum(q * d, (q - 1.0) * d)))
    return float(np.mean(losses))


def interval_scores(
    actual: np.ndarray,
    bounds: dict[float, tuple[np.ndarray, np.ndarray]],
    quantiles: dict[float, np.ndarray],
    prefix: str = "",
) -> dict[str, float]:
    """coverage_XX, width_XX, winkler_XX per level and the mean pinball loss, as flat metrics."""
    out: dict[str, float] = {}
    for level, (lo, hi) in sorted(bounds.items()):
        pct = level_label(level)
        out[f"{prefix}coverage_{pct}"] = coverage(actual, lo, hi)
        out[f"{prefix}width_{pct}"] = float(np.mean(np.asarray(hi) - np.asarray(lo)))
        out[f"{prefix}winkler_{pct}"] = winkler(actual, lo, hi, level)
    out[f"{prefix}pinball"] = pinball(actual, quantiles)
    return out


def symmetric_quantiles(
    point: np.ndarray, halfwidth_of: callable, levels: tuple[float, ...] = SERVED_QUANTILES
) -> dict[float, np.ndarray]:
    """Quantiles of a distribution symmetric in log price around `point`.

    `halfwidth_of(coverage) -> [n]` log half-widths of the central interval of that coverage.
    """
    points = np.asarray(point, dtype=np.float64)  # pragma: no mutate (equivalent: the products are float64)
    out = {}
    for q in levels:
        # pragma: no mutate start (equivalent: z is multiplied by np.sign(q - 0.5) = 0 at the median)
        z = halfwidth_of(abs(2.0 * q - 1.0)) if q != 0.5 else 0.0
        # pragma: no mutate end
        out[q] = points * np.exp(np.sign(q - 0.5) * z)
    return out
