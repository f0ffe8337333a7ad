import numpy as np
import pandas as pd
import pytest

from bundle.transform import fit_scaler
from training.data import DataError
from training.splits import make_splits


def series(n=600, seed=1) -> pd.DataFrame:
    closes = 20 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.02, n)))
    return pd.DataFrame({"date": pd.bdate_range("2015-01-01", periods=n), "close": closes})


@pytest.mark.parametrize("target", ["level", "log_return"])
def test_scaler_never_sees_validation_or_test(target):
    df = series()
    base = make_splits(df, 60, target, val=100, test=100)
    # Rewrite every close after the training part: the scaler must not move.
    shocked = df.copy()
    first_val_target = 60 + len(base.train)
    shocked.loc[first_val_target:, "close"] *= 50.0
    assert make_splits(shocked, 60, target, 100, 100).spec.scaler == base.spec.scaler
    assert base.spec.scaler == fit_scaler(df["close"].to_numpy()[:first_val_target], target)


def test_parts_are_chronological_and_disjoint():
    s = make_splits(series(), 60, "log_return", val=100, test=150)
    assert len(s.validation) == 100 and len(s.test) == 150 and len(s.train) == 600 - 60 - 250
    assert s.train.dates[-1] < s.validation.dates[0] <= s.validation.dates[-1] < s.test.dates[0]
    # Each test window ends the session before its target: one step ahead from actual closes.
    closes = series()["close"].to_numpy()
    np.testing.assert_array_equal(s.test.closes[0], closes[600 - 150 - 60 : 600 - 150])
    assert s.test.next_close[0] == closes[600 - 150]


def test_too_short_for_the_splits_is_a_clear_error():
    with pytest.raises(DataError, match="too few rows: 300 sessions leave 40 training windows"):
        make_splits(series(300), 60, "level", val=100, test=100)


def test_exactly_the_minimum_training_windows_is_enough():
    """100 training windows are accepted, 99 are refused: 60 + 100 + 50 + 50 = 260 sessions."""
    s = make_splits(series(260), 60, "level", val=50, test=50)
    assert len(s.train) == 100
    with pytest.raises(DataError, match=r"leave 99 training windows .*\(need 100\)"):
        make_splits(series(259), 60, "level", val=50, test=50)


def test_part_features_are_the_model_inputs_and_targets_of_its_windows():
    s = make_splits(series(), 60, "log_return", val=100, test=100)
    x, y = s.test.features(s.spec)
    assert x.shape == (100, 59, 1) and y.shape == (100,)
    from bundle.transform import model_inputs, model_targets

    np.testing.assert_array_equal(x, model_inputs(s.test.closes, s.spec))
    np.testing.assert_array_equal(y, model_targets(s.test.closes, s.test.next_close, s.spec))


def test_splits_are_immutable():
    import dataclasses

    s = make_splits(series(), 60, "level", val=100, test=100)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.test = s.train  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.test.closes = s.train.closes  # type: ignore[misc]
