"""The online intervals on test, replayed as the monitor and the predictor will run them.

Training cannot serve the online state (the monitor computes it after deployment), but it can replay
it over its test window with the same `bundle.online` functions (`bundle.replay`): the state is
built from the sessions before test (the validation year's served points score it), then each test
session gets the band of the state as of the day before and its close updates the state. The report
shows these rows beside the bundle's static calibration, and the gate judges them (for the candidate
and the champion, on the same window), because they are what a client will be served.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bundle.online import History, ModelIdentity
from bundle.replay import replay
from marketdata.frames import RANGE_COLUMNS
from training.scores import SERVED_QUANTILES, interval_scores
from training.splits import Splits

#: The replay needs an identity; training's candidate has no version yet.
CANDIDATE = ModelIdentity(model_name="candidate", model_version="candidate", bundle_sha256="0" * 64)


def history(frame: pd.DataFrame) -> History:
    """The training frame's sessions; open/high/low when the source had them."""
    dates = [d.date() for d in pd.DatetimeIndex(frame["date"])]
    close = frame["close"].to_numpy(dtype=np.float64)
    if not set(RANGE_COLUMNS) <= set(frame.columns):
        return History(dates, close)
    return History(dates, close, *(frame[c].to_numpy(dtype=np.float64) for c in RANGE_COLUMNS))


def online_scores(
    frame: pd.DataFrame,
    splits: Splits,
    validation_point: np.ndarray,
    test_point: np.ndarray,
    sigma_floor: float,
    coverages: tuple[float, ...],
    window: int | None = None,
) -> dict[str, float]:
    """coverage / width / Winkler per level and pinball of the online replay on test, `online_`.

    `window`: closes per request of the model replayed (a champion's may be shorter than the run's).
    """
    hist = history(frame)
    n_test, n_val = len(splits.test), len(splits.validation)
    start = len(hist) - n_test
    points = np.full(len(hist), np.nan)  # sessions before validation are scored around naive
    points[start - n_val : start] = validation_point
    points[start:] = test_point
    result = replay(
        CANDIDATE, hist, points, start, window=window or splits.spec.window, sigma_floor=sigma_floor
    )
    point = np.asarray(test_point, dtype=np.float64)
    bounds = {c: result.bounds(point, c) for c in coverages}
    quantiles = {q: result.quantile(point, q) if q != 0.5 else point for q in SERVED_QUANTILES}
    return interval_scores(splits.test.next_close, bounds, quantiles, prefix="online_")
