import numpy as np
import pytest
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from bundle.schema import FeatureSpec
from bundle.transform import (
    fit_scaler,
    model_inputs,
    model_targets,
    recent_windows,
    sliding_windows,
    to_price,
)

rng = np.random.default_rng(0)
CLOSES = 30.0 * np.exp(np.cumsum(rng.normal(0, 0.02, 400)))


@pytest.mark.parametrize("target", ["level", "log_return"])
def test_target_round_trip_gives_back_the_next_close(target):
    spec = FeatureSpec(window=20, target=target, scaler=fit_scaler(CLOSES[:200], target))
    x, y = sliding_windows(CLOSES, 20)
    np.testing.assert_allclose(to_price(model_targets(x, y, spec), x, spec), y, rtol=1e-5)


@pytest.mark.parametrize("target,steps", [("level", 20), ("log_return", 19)])
def test_model_inputs_shape_and_dtype(target, steps):
    spec = FeatureSpec(window=20, target=target, scaler=fit_scaler(CLOSES, target))
    x, _ = sliding_windows(CLOSES, 20)
    features = model_inputs(x[:7], spec)
    assert features.shape == (7, steps, 1) and features.dtype == np.float32
    assert spec.steps == steps


def test_minmax_scaler_matches_scikit_learn():
    ours = fit_scaler(CLOSES[:100], "level")
    spec = FeatureSpec(window=10, target="level", scaler=ours)
    sk = MinMaxScaler().fit(CLOSES[:100, None])
    window = CLOSES[None, 150:160]
    np.testing.assert_allclose(model_inputs(window, spec)[0, :, 0], sk.transform(window.T)[:, 0], rtol=1e-6)


def test_standard_scaler_matches_scikit_learn_on_log_returns():
    ours = fit_scaler(CLOSES[:100], "log_return")
    sk = StandardScaler().fit(np.diff(np.log(CLOSES[:100]))[:, None])
    assert ours.center == pytest.approx(sk.mean_[0]) and ours.scale == pytest.approx(sk.scale_[0])


def test_sliding_windows_pairs_each_window_with_the_following_close():
    x, y = sliding_windows(np.arange(1.0, 8.0), 3)
    assert x.tolist()[0] == [1, 2, 3] and y.tolist() == [4, 5, 6, 7]


def test_minmax_scaler_on_prices_below_one_unit():
    """A range narrower than 1.00 is still scaled to [0, 1] (the floor only guards a flat series)."""
    closes = np.array([0.5, 0.7, 0.9, 0.6])
    scaler = fit_scaler(closes, "level")
    assert scaler.center == 0.5 and scaler.scale == pytest.approx(0.4)
    spec = FeatureSpec(window=4, target="level", scaler=scaler)
    np.testing.assert_allclose(model_inputs(closes[None, :], spec)[0, :, 0], [0.0, 0.5, 1.0, 0.25], rtol=1e-6)


@pytest.mark.parametrize("target", ["level", "log_return"])
def test_flat_training_series_gives_finite_inputs(target):
    scaler = fit_scaler(np.full(50, 7.0), target)
    spec = FeatureSpec(window=5, target=target, scaler=scaler)
    assert 0 < scaler.scale <= 1e-12
    assert np.isfinite(model_inputs(np.full((1, 5), 7.0), spec)).all()


@pytest.mark.parametrize("target", ["level", "log_return"])
def test_float32_closes_are_computed_in_float64(target):
    """ONNX and v2 clients speak FP32: the transform must give what the same values in float64 give."""
    closes32 = CLOSES.astype(np.float32)
    closes64 = closes32.astype(np.float64)
    assert fit_scaler(closes32, target) == fit_scaler(closes64, target)
    spec = FeatureSpec(window=20, target=target, scaler=fit_scaler(closes64[:200], target))
    windows32, next32 = sliding_windows(closes32, 20)
    assert windows32.dtype == next32.dtype == np.float64
    x64, y64 = sliding_windows(closes64, 20)
    x32, y32 = x64.astype(np.float32), y64.astype(np.float32)  # exact: the values are float32's
    np.testing.assert_array_equal(model_inputs(x32, spec), model_inputs(x64, spec))
    targets = model_targets(x32, y32, spec)
    assert targets.dtype == np.float32
    np.testing.assert_array_equal(targets, model_targets(x64, y64, spec))


def test_to_price_takes_the_network_output_as_onnx_gives_it():
    """The network answers `[batch, 1]`: the next closes are still `[batch]`, one per window."""
    spec = FeatureSpec(window=20, target="log_return", scaler=fit_scaler(CLOSES[:200], "log_return"))
    x, _ = sliding_windows(CLOSES, 20)
    out = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    np.testing.assert_array_equal(to_price(out[:, None], x[:3], spec), to_price(out, x[:3], spec))
    assert to_price(out[:, None], x[:3], spec).shape == (3,)


def test_recent_windows_are_the_last_sessions_with_a_next_close():
    closes = np.arange(1.0, 11.0)  # 10 closes, window 3: 7 windows with a next close
    recent = recent_windows(closes, 3, 2)
    assert recent.tolist() == [[6.0, 7.0, 8.0], [7.0, 8.0, 9.0]]
    assert recent_windows(closes, 3, 100).shape == (7, 3)  # fewer than asked: all of them
