"""Chronological train / validation / test windows and the scaler fitted on train only."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bundle.schema import FeatureSpec
from bundle.transform import fit_scaler, model_inputs, model_targets, sliding_windows
from training.data import DataError

MIN_TRAIN_WINDOWS = 100


@dataclass(frozen=True)
class Part:
    """Windows of raw closes `[n, window]`, their next close `[n]` and its date."""

    closes: np.ndarray
    next_close: np.ndarray
    dates: pd.DatetimeIndex

    def features(self, spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
        return model_inputs(self.closes, spec), model_targets(self.closes, self.next_close, spec)

    def __len__(self) -> int:
        return len(self.next_close)


@dataclass(frozen=True)
class Splits:
    train: Part
    validation: Part
    test: Part
    spec: FeatureSpec


def make_splits(frame: pd.DataFrame, window: int, target, val: int, test: int) -> Splits:
    """The last `test` targets are test, the `val` before them validation, the rest train.

    The scaler sees only closes up to the last training target, never validation or test.
    """
    closes = frame["close"].to_numpy(dtype=np.float64)
    dates = pd.DatetimeIndex(frame["date"])
    x, y = sliding_windows(closes, window)
    target_dates = dates[window:]
    n_train = len(y) - val - test
    if n_train < MIN_TRAIN_WINDOWS:
        raise DataError(
            f"too few rows: {len(closes)} sessions leave {n_train} training windows after "
            f"{val} validation and {test} test sessions (need {MIN_TRAIN_WINDOWS})"
        )
    train_end = window + n_train  # closes[:train_end] are everything training may see
    spec = FeatureSpec(window=window, target=target, scaler=fit_scaler(closes[:train_end], target))
    cut = [0, n_train, n_train + val, len(y)]
    parts = [Part(x[a:b], y[a:b], target_dates[a:b]) for a, b in itertools.pairwise(cut)]
    return Splits(*parts, spec=spec)
