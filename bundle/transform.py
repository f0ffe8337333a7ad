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
    # pragma: no mutate start (immaterial: np.diff's default axis -1 is 1 for [batch, window] closes)
    series = np.diff(np.log(x), axis=1) if spec.target == "log_return" else x
    # pragma: no mutate end
    z = (series - spec.scaler.center) / spec.scaler.scale
    return z.astype(np.float32)[..., np.newaxis]


def model_targets(closes: np.ndarray, next_close: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Scaled training target for each window: `[batch]` float32."""
    nxt = np.asarray(next_close, dtype=np.float64)  # pragma: no mutate (immaterial: a last-bit difference)
    # pragma: no mutate start (equivalent: nxt is float64, so is the quotient whatever the closes' dtype)
    raw = np.log(nxt / np.asarray(closes, dtype=np.float64)[:, -1]) if spec.target == "log_return" else nxt
    # pragma: no mutate end
    return ((raw - spec.scaler.center) / spec.scaler.scale).astype(np.float32)


def to_price(model_output: np.ndarray, closes: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Model output `[batch]` (scaled) -> next close in price units, float64 `[batch]`."""
    # pragma: no mutate start (equivalent: numpy 2 reads reshape(-2) as reshape(-1))
    raw = np.asarray(model_output, dtype=np.float64).reshape(-1) * spec.scaler.scale
    # pragma: no mutate end
    raw += spec.scaler.center
    if spec.target == "log_return":
        # pragma: no mutate start (equivalent: numeric closes are exact in float64, and x float64 is float64)
        return np.asarray(closes, dtype=np.float64)[:, -1] * np.exp(raw)
        # pragma: no mutate end
    return raw


def sliding_windows(closes: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """All (window, next close) pairs of a series: `[n, window]` and `[n]`."""
    series = np.asarray(closes, dtype=np.float64)
    pairs = np.lib.stride_tricks.sliding_window_view(series, window + 1)
    return pairs[:, :window], pairs[:, window]


def recent_windows(closes: np.ndarray, window: int, sessions: int) -> np.ndarray:
    """The `sessions` most recent windows that have a next close (a run's test windows): `[n, window]`."""
    return sliding_windows(closes, window)[0][-sessions:]
