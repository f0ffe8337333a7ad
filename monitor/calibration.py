"""The online calibration state of the model the monitor scores (`bundle.online`), kept current.

Each run: for a new model version (or a state that cannot be continued) `initial_state` from the
sessions fetched and the points the bundle serves; else `update` for every session realized since
the state's as-of date, in order. The state is stored (a file or a ConfigMap: `state_file`,
`state_configmap`) whenever it differs from what was last written, and read back once at start, so
a restart continues where it stopped. Storing failing is counted and retried next run; it never
stops the realized gauges.

The realized coverage and Winkler gauges judge the intervals the predictor serves from such a state:
`replayed_bands` replays it over the scoring window with `bundle.replay` (each session's band from
the state as of the session before).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np
import pandas as pd

from bundle import OnnxForecaster
from bundle.io import metadata_sha256
from bundle.online import (
    ANCHOR,
    MIN_SCORES,
    SCORE_WINDOW,
    History,
    ModelIdentity,
    OnlineState,
    initial_state,
    update,
)
from bundle.replay import replay
from marketdata.frames import RANGE_COLUMNS

log = logging.getLogger(__name__)


class StateStore(Protocol):
    def where(self, model: str) -> str: ...
    def read(self, model: str) -> OnlineState | None: ...
    def write(self, model: str, state: OnlineState) -> None: ...


def history_of(frame: pd.DataFrame) -> History:
    """A validated frame's sessions, with open/high/low when the source has them (a range with a
    missing value falls back to the squared return, `bundle.har.range_variance`)."""
    dates = [d.date() for d in pd.DatetimeIndex(frame["date"])]
    close = frame["close"].to_numpy(dtype=np.float64)
    if not set(RANGE_COLUMNS) <= set(frame.columns):
        return History(dates, close)
    return History(dates, close, *(frame[c].to_numpy(dtype=np.float64) for c in RANGE_COLUMNS))


def served_points(forecaster: OnnxForecaster, closes: np.ndarray, first: int) -> np.ndarray:
    """`points[t]`: the forecast served for session t from the window ending at t - 1, for t >= first
    (NaN before: `initial_state` reads naive there)."""
    closes = np.asarray(closes, dtype=np.float64)
    window, points = forecaster.window, np.full(len(closes), np.nan)
    first = max(first, window)
    if first < len(closes):
        windows = np.lib.stride_tricks.sliding_window_view(closes, window)[first - window : -1]
        points[first:] = forecaster.predict(windows)
    return points


def identity_of(model: str, version: str, forecaster: OnnxForecaster) -> ModelIdentity:
    return ModelIdentity(model_name=model, model_version=version,
                         bundle_sha256=metadata_sha256(forecaster.bundle.path))  # fmt: skip


def replayed_bands(
    identity: ModelIdentity, history: History, forecaster: OnnxForecaster, sessions: int
) -> dict[float, tuple[np.ndarray, np.ndarray]] | None:
    """The online bands of the last `sessions` sessions at each served level, as the predictor serves
    them (None when there are too few sessions before them for a servable state)."""
    dist, start, window = forecaster.bundle.metadata.distribution, len(history) - sessions, forecaster.window
    if dist is None or start - 1 - window < MIN_SCORES:
        return None
    points = served_points(forecaster, history.close, start - SCORE_WINDOW)
    result = replay(identity, history, points, start, window=window, sigma_floor=dist.sigma_floor)
    return {
        i.coverage: result.bounds(points[start:], i.coverage) for i in forecaster.bundle.metadata.intervals
    }


@dataclass
class Tracker:
    """One model's state: advanced each run, written when it changed (or when the last write failed)."""

    store: StateStore
    model: str
    state: OnlineState | None = None
    written: OnlineState | None = None
    _read: bool = False

    def advance(
        self, identity: ModelIdentity, history: History, forecaster: OnnxForecaster, now: datetime
    ) -> OnlineState | None:
        """The state after every session of `history`; None for a format 1 bundle (static intervals)."""
        dist = forecaster.bundle.metadata.distribution
        if dist is None:
            return None
        if not self._read:  # once per process: what a previous run (of this process or another) wrote
            self.state = self.written = self.store.read(self.model)
            self._read = True
        current, window, n = self.state, forecaster.window, len(history)
        if current is not None and current.identity == identity and current.as_of > history.dates[-1]:
            return current  # the source lags behind what was already counted: nothing to add
        resume = _resume_at(current, identity, history, window)
        points = served_points(forecaster, history.close, n - SCORE_WINDOW if resume is None else resume + 1)
        if resume is None:
            state = initial_state(
                identity, history, points, window=window, sigma_floor=dist.sigma_floor, now=now
            )
            log.info("%s: online calibration state started for version %s as of %s (%d scores)",
                     self.model, identity.model_version, state.as_of, len(state.scores))  # fmt: skip
        else:
            state = current
            for i in range(resume + 1, n):
                state = update(state, history.session(i), float(points[i]), now=now)
        self.state = state
        return state

    def store_if_changed(self) -> bool:
        """Write the state if it is not what was written last; True if a write happened."""
        if self.state is None or self.state is self.written:
            return False
        self.store.write(self.model, self.state)
        self.written = self.state
        return True


def _resume_at(
    state: OnlineState | None, identity: ModelIdentity, history: History, window: int
) -> int | None:
    """Index of the state's as-of session in `history` if the state continues there: same model,
    version and bundle, same window, and the closes it ends with are those of the data (a revised
    history starts a new state)."""
    if state is None or state.identity != identity or state.window != window:
        return None
    try:
        i = history.dates.index(state.as_of)
    except ValueError:
        return None
    if i + 1 < ANCHOR or not np.allclose(history.close[i + 1 - ANCHOR : i + 1], state.recent_closes[-ANCHOR:],
                                          rtol=1e-9, atol=0):  # fmt: skip
        return None
    return i
