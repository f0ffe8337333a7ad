"""Raw closes <-> model space. The one implementation both training and serving use."""

from __future__ import annotations

import numpy as np

from bundle.schema import FeatureSpec, Scaler, Target


def fit_scaler(train_closes: np.ndarray, target: Target) -> Scaler:
    """Fit on the training closes only (the seed fitted on everything: a leak)."""
    closes = np.asarray(train_closes, dtype=np.float64)
    if target == "level":
        lo, hi = float(closes.min()), float(closes.max())
        return Scaler(kind="minmax", center=lo, scale=max(hi - lo, 1e-12))
    returns = np.diff(np.log(closes))
    return Scaler(kind="standard", center=float(returns.mean()), scale=max(float(returns.std()), 1e-12))


def model_inputs(closes: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """`[batch, window]` closes -> `[batch, steps, 1]` float32 model input."""
    x = np.asarray(closes, dtype=np.float64)
    series = np.diff(np.log(x), axis=1) if spec.target == "log_return" else x
    z = (series - spec.scaler.center) / spec.scaler.scale
    return z.astype(np.float32)[..., np.newaxis]


def model_targets(closes: np.ndarray, next_close: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Scaled training target for each window: `[batch]` float32."""
    nxt = np.asarray(next_close, dtype=np.float64)
    raw = np.log(nxt / np.asarray(closes, dtype=np.float64)[:, -1]) if spec.target == "log_return" else nxt
    return ((raw - spec.scaler.center) / spec.scaler.scale).astype(np.float32)


def to_price(model_output: np.ndarray, closes: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Model output `[batch]` (scaled) -> next close in price units, float64 `[batch]`."""
    raw = np.asarray(model_output, dtype=np.float64).reshape(-1) * spec.scaler.scale
    raw += spec.scaler.center
    if spec.target == "log_return":
        return np.asarray(closes, dtype=np.float64)[:, -1] * np.exp(raw)
    return raw


def sliding_windows(closes: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """All (window, next close) pairs of a series: `[n, window]` and `[n]`."""
    series = np.asarray(closes, dtype=np.float64)
    pairs = np.lib.stride_tricks.sliding_window_view(series, window + 1)
    return pairs[:, :window], pairs[:, window]


def recent_windows(closes: np.ndarray, window: int, sessions: int) -> np.ndarray:
    """The `sessions` most recent windows that have a next close (a run's test windows): `[n, window]`."""
    return sliding_windows(closes, window)[0][-sessions:]
