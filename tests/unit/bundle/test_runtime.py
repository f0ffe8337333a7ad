"""The onnxruntime forecaster on a tiny real bundle whose answers are known by hand."""

from __future__ import annotations

import dataclasses
import math
import pickle

import numpy as np
import pytest

from bundle import BundleError, Forecast, OnnxForecaster
from bundle.runtime import shrink
from bundle.transform import model_inputs
from tests.tiny_bundle import tiny_bundle

CLOSES = np.array([[10.0, 11.0, 12.0, 13.0, 14.0], [0.5, 0.4, 0.6, 0.55, 0.45]])


def test_predict_is_last_close_times_exp_of_the_scaled_output(tmp_path):
    forecaster = OnnxForecaster(tiny_bundle(tmp_path, center=0.01))
    np.testing.assert_allclose(forecaster.predict(CLOSES), CLOSES[:, -1] * math.exp(0.01), rtol=1e-12)
    assert forecaster.window == 5


def test_predict_feeds_the_scaled_window_to_the_model(tmp_path):
    """weight 1: output = mean of the scaled log returns; price = last * exp(output * scale + center)."""
    forecaster = OnnxForecaster(tiny_bundle(tmp_path, weight=1.0, center=0.001, scale=0.02))
    z = (np.diff(np.log(CLOSES), axis=1) - 0.001) / 0.02
    raw = z.astype(np.float32).mean(axis=1) * 0.02 + 0.001
    np.testing.assert_allclose(forecaster.predict(CLOSES), CLOSES[:, -1] * np.exp(raw), rtol=1e-6)


def test_the_session_runs_on_the_threads_asked_for_and_answers_one_value_per_window(tmp_path):
    """`--threads` reaches onnxruntime (its default, 0, takes every core), and the network's
    `[batch, 1]` answer comes back as `[batch]`."""
    forecaster = OnnxForecaster(tiny_bundle(tmp_path), threads=3)
    assert forecaster._session.get_session_options().intra_op_num_threads == 3
    assert forecaster.run_scaled(model_inputs(CLOSES, forecaster.spec)).shape == (2,)


def test_level_target_returns_the_unscaled_output(tmp_path):
    forecaster = OnnxForecaster(tiny_bundle(tmp_path, target="level", center=7.5, scale=2.0))
    np.testing.assert_allclose(forecaster.predict(CLOSES), [7.5, 7.5])


def test_forecast_is_recursive_and_intervals_widen_as_sqrt_h(tmp_path):
    bundle = tiny_bundle(tmp_path, center=0.01, intervals=((0.8, 0.1), (0.95, 0.2)))
    result = OnnxForecaster(bundle).forecast(CLOSES, horizon=3)
    steps = np.arange(1, 4)
    expected = CLOSES[:, -1:] * np.exp(0.01 * steps)  # each step grows the previous forecast
    np.testing.assert_allclose(result.mean, expected, rtol=1e-12)
    assert sorted(result.lower) == sorted(result.upper) == [0.8, 0.95]
    for coverage, q in ((0.8, 0.1), (0.95, 0.2)):
        np.testing.assert_allclose(result.lower[coverage], expected * np.exp(-q * np.sqrt(steps)), rtol=1e-12)
        np.testing.assert_allclose(result.upper[coverage], expected * np.exp(q * np.sqrt(steps)), rtol=1e-12)


def test_each_step_feeds_the_previous_forecast_back_as_the_newest_close(tmp_path):
    forecaster = OnnxForecaster(tiny_bundle(tmp_path, weight=1.0, center=0.001, scale=0.02))
    result = forecaster.forecast(CLOSES, horizon=2)
    first = forecaster.predict(CLOSES)
    second = forecaster.predict(np.concatenate([CLOSES[:, 1:], first[:, None]], axis=1))
    np.testing.assert_allclose(result.mean, np.stack([first, second], axis=1), rtol=1e-12)


def test_a_window_of_the_wrong_length_is_not_answered(tmp_path):
    with pytest.raises(Exception, match=r"(?i)dimension|shape"):
        OnnxForecaster(tiny_bundle(tmp_path)).predict(CLOSES[:, 1:])


def test_forecast_is_immutable(tmp_path):
    result = OnnxForecaster(tiny_bundle(tmp_path)).forecast(CLOSES)
    assert isinstance(result, Forecast)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.mean = result.mean * 2  # type: ignore[misc]


def test_forecast_of_one_step_is_predict(tmp_path):
    forecaster = OnnxForecaster(tiny_bundle(tmp_path, center=-0.02))
    result = forecaster.forecast(CLOSES)
    assert result.mean.shape == (2, 1)
    np.testing.assert_allclose(result.mean[:, 0], forecaster.predict(CLOSES))
    np.testing.assert_allclose(result.upper[0.8][:, 0], forecaster.predict(CLOSES) * math.exp(0.1))


def test_pickled_forecaster_answers_the_same(tmp_path):
    """kserve pickles the model into worker processes; the session is rebuilt there."""
    forecaster = OnnxForecaster(tiny_bundle(tmp_path, center=0.01))
    clone = pickle.loads(pickle.dumps(forecaster))
    np.testing.assert_array_equal(clone.predict(CLOSES), forecaster.predict(CLOSES))
    assert clone.variant == "fp32" and clone.threads == forecaster.threads == 1  # one per worker


def test_self_test_accepts_a_sane_model(tmp_path):
    OnnxForecaster(tiny_bundle(tmp_path, center=0.01)).self_test()


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
@pytest.mark.parametrize(
    "center,message",
    # 400: finite after one step (100 e^400), infinite after two: the self-test runs two
    [(1.5, "implausible"), (-1.5, "implausible"), (1000.0, "non-finite"), (400.0, "non-finite")],
)
def test_self_test_refuses_nonsense(tmp_path, center, message):
    with pytest.raises(BundleError, match=message):
        OnnxForecaster(tiny_bundle(tmp_path, center=center)).self_test()


def test_self_test_accepts_a_trend_following_model(tmp_path):
    """The self-test window must look like prices (gentle drift and noise): a sane model that
    extrapolates ten times the window's mean return must pass, not be refused as implausible."""
    OnnxForecaster(tiny_bundle(tmp_path, weight=10.0, scale=0.01)).self_test()


@pytest.mark.parametrize("center", [0.998, -0.998])
def test_self_test_accepts_up_to_a_factor_of_e(tmp_path, center):
    """The plausibility band is (last / e, last * e) around the window's last close: a model just
    inside it (two steps of exp(+-0.499)) passes."""
    OnnxForecaster(tiny_bundle(tmp_path, center=center / 2)).self_test()


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_non_finite_interval_is_refused(tmp_path):
    with pytest.raises(BundleError, match="non-finite"):
        OnnxForecaster(tiny_bundle(tmp_path, center=0.0, intervals=((0.8, 1000.0),))).self_test()


def test_unloadable_model_is_a_bundle_error(tmp_path):
    with pytest.raises(BundleError, match="cannot load fp32"):
        OnnxForecaster(tiny_bundle(tmp_path, model=b"not an onnx model"))


def test_absent_variant_is_a_bundle_error(tmp_path):
    with pytest.raises(BundleError, match="no 'int8' variant"):
        OnnxForecaster(tiny_bundle(tmp_path), variant="int8")


def test_weight_one_serves_the_network_bit_for_bit():
    """No exp/log round trip at weight 1 (format 1 bundles, and a network chosen whole): the served
    forecast is the network's own number; for 0.4567 over 0.45 the round trip is 1 ulp off."""
    last, f = np.array([0.45, 37.3]), np.array([0.4567, 37.31])
    np.testing.assert_array_equal(shrink(f, last, 1.0), f)
    np.testing.assert_allclose(shrink(f, last, 0.5), last * np.sqrt(f / last), rtol=1e-12)
