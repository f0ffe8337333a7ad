"""Served intervals and quantiles through the real onnxruntime path, for extreme but valid windows,
and format 1 bundles serving exactly as before."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from bundle import BundleMetadata, FeatureSpec, Forecast, OnnxForecaster, Scaler, VariantFile, write_bundle
from bundle.distribution import LEVELS, PredictiveDistribution
from bundle.io import sha256_bytes
from bundle.schema import ConformalInterval, SplitRange

WINDOW = 60
SCALER = Scaler(kind="standard", center=0.0, scale=0.02)


def tiny_model() -> bytes:
    """y = 0.5 x mean of the scaled returns: a real ONNX graph, opset 17, dynamic batch."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", WINDOW - 1, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch"])
    half = helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2], keepdims=0),
        helper.make_node("Mul", ["m", "half"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "tiny", [x], [y], initializer=[half])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


# |z| quantiles of a standard normal at the grid levels (rounded), non-decreasing.
NORMAL = (0.063, 0.126, 0.253, 0.385, 0.524, 0.674, 0.842, 1.036, 1.282, 1.44, 1.645, 1.96, 2.241, 2.576)


def distribution() -> PredictiveDistribution:
    return PredictiveDistribution(
        sigma_floor=1e-4, levels=LEVELS, score_quantiles=NORMAL, tail_slope=0.5, calibration_sessions=250
    )


def bundle(tmp_path, fmt: int) -> OnnxForecaster:
    data = tiny_model()
    split = SplitRange(start=date(2020, 1, 1), end=date(2020, 6, 1), sessions=100)
    extra = {"format_version": 2, "point_weight": 0.5, "distribution": distribution()} if fmt == 2 else {}
    meta = BundleMetadata(
        model_name="m", ticker="T", source="test", trained_at=datetime(2024, 1, 1, tzinfo=UTC),
        data_start=date(2020, 1, 1), data_end=date(2020, 6, 1),
        splits={"train": split, "validation": split, "test": split},
        features=FeatureSpec(window=WINDOW, target="log_return", scaler=SCALER),
        intervals=(ConformalInterval(coverage=0.8, log_halfwidth=0.02),
                   ConformalInterval(coverage=0.95, log_halfwidth=0.035)),
        metrics={"mae": 1.0}, variants={"fp32": VariantFile(file="model.onnx", sha256=sha256_bytes(data))},
        **extra,
    )  # fmt: skip
    onnx.checker.check_model(onnx.load_from_string(data))
    return OnnxForecaster(write_bundle(tmp_path, meta, {"model.onnx": data}), "fp32")


def extreme_windows() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    walk = 30.0 * np.exp(np.cumsum(rng.normal(0, 0.02, WINDOW)))
    jump = walk.copy()
    jump[-1] = jump[-2] * 1.2
    return {
        "constant": np.full(WINDOW, 25.0),
        "20% one-day jump": jump,
        "near 1e-3": walk / walk[-1] * 1e-3,
        "near 1e6": walk / walk[-1] * 1e6,
        "alternating 1e-3 and 1e3": np.where(np.arange(WINDOW) % 2, 1e3, 1e-3),
    }


LEVELS_ASKED = [1e-6, 0.001, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975, 0.999, 1 - 1e-6]


@pytest.mark.parametrize("name", list(extreme_windows()))
def test_quantiles_are_monotone_finite_and_consistent_with_the_intervals(tmp_path, name):
    forecaster = bundle(tmp_path, 2)
    closes = extreme_windows()[name][None, :]
    result = forecaster.forecast(closes, horizon=5)
    q = np.stack([forecaster.quantile(result, lv) for lv in LEVELS_ASKED])  # [levels, 1, 5]
    assert np.all(np.isfinite(q)) and np.all(q > 0)
    assert np.all(np.diff(q, axis=0) >= 0), name
    if "alternating" not in name:  # there the bounds are so far apart that float spacing ties them
        assert np.all(np.diff(q, axis=0) > 0), name  # strictly monotone, even for a constant window
    for c in (0.8, 0.95):
        np.testing.assert_allclose(forecaster.quantile(result, (1 - c) / 2), result.lower[c])
        np.testing.assert_allclose(forecaster.quantile(result, (1 + c) / 2), result.upper[c])
    # Horizons: the log half-width grows as sqrt(h) around each step's point forecast.
    log_half = np.log(result.upper[0.8] / result.mean)[0]
    np.testing.assert_allclose(log_half / log_half[0], np.sqrt(np.arange(1, 6)), rtol=1e-9)


def test_interval_follows_the_windows_volatility(tmp_path):
    forecaster = bundle(tmp_path, 2)
    rng = np.random.default_rng(3)
    calm = 30.0 * np.exp(np.cumsum(rng.normal(0, 0.005, WINDOW)))
    wild = 30.0 * np.exp(np.cumsum(rng.normal(0, 0.04, WINDOW)))
    result = forecaster.forecast(np.stack([calm / calm[-1], wild / wild[-1]]) * 30.0)
    width = (result.upper[0.8] - result.lower[0.8])[:, 0]
    assert width[1] > 4 * width[0]


def test_point_weight_is_applied_when_serving(tmp_path):
    two, one = bundle(tmp_path / "2", 2), bundle(tmp_path / "1", 1)
    closes = extreme_windows()["20% one-day jump"][None, :]
    last = closes[0, -1]
    raw = np.log(one.predict(closes)[0] / last)
    assert raw != 0
    assert np.log(two.predict(closes)[0] / last) == pytest.approx(0.5 * raw)


def test_format_1_bundle_serves_static_intervals_as_before(tmp_path):
    forecaster = bundle(tmp_path, 1)
    closes = extreme_windows()["near 1e6"][None, :]
    result = forecaster.forecast(closes, horizon=2)
    assert result.sigma is None
    widen = np.sqrt([1.0, 2.0])
    np.testing.assert_allclose(result.upper[0.8], result.mean * np.exp(0.02 * widen))
    np.testing.assert_allclose(forecaster.quantile(result, 0.025), result.lower[0.95])
    with pytest.raises(ValueError, match="format 1"):
        forecaster.quantile(result, 0.3)


def test_unknown_format_version_is_refused_by_number(tmp_path):
    import json

    from bundle import BundleError, load_bundle

    forecaster = bundle(tmp_path, 2)
    path = forecaster.bundle.path / "metadata.json"
    meta = json.loads(path.read_text())
    assert meta["format_version"] == 2 and load_bundle(forecaster.bundle.path).metadata.distribution
    meta["format_version"] = 3
    path.write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="bundle format version 3 is not supported"):
        load_bundle(forecaster.bundle.path)
    meta["format_version"] = 1  # a format 1 file cannot carry format 2 fields
    path.write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="format 1 has no"):
        load_bundle(forecaster.bundle.path)


def test_format_1_quantiles_are_the_interval_ends_and_the_mean(tmp_path):
    forecaster = bundle(tmp_path, 1)
    result = forecaster.forecast(extreme_windows()["20% one-day jump"][None, :], horizon=2)
    np.testing.assert_array_equal(forecaster.quantile(result, 0.5), result.mean)
    np.testing.assert_array_equal(forecaster.quantile(result, 0.1), result.lower[0.8])
    np.testing.assert_array_equal(forecaster.quantile(result, 0.9), result.upper[0.8])
    np.testing.assert_array_equal(forecaster.quantile(result, 0.975), result.upper[0.95])


def test_format_1_levels_match_up_to_float_noise_as_the_predictor_checks_them(tmp_path):
    """The time-series API accepts a quantile within LEVEL_TOLERANCE (1e-12) of a served level
    (predictor/timeseries.py); the runtime answers each such one, and nothing farther off."""
    forecaster = bundle(tmp_path, 1)
    result = forecaster.forecast(extreme_windows()["constant"][None, :])
    np.testing.assert_array_equal(forecaster.quantile(result, 0.1 + 1e-13), result.lower[0.8])
    np.testing.assert_array_equal(forecaster.quantile(result, 0.975 - 1e-13), result.upper[0.95])
    for off in (0.1000001, 0.1 + 1e-9, 0.1 + 1e-10):  # 1e-10: inside a relative 1e-9, outside 1e-12
        with pytest.raises(ValueError, match="not available"):
            forecaster.quantile(result, off)
    # A level stored with float noise (0.95 + 1e-13) is served under the clean quantile 0.025.
    noisy = 0.95 + 1e-13
    odd = Forecast(result.mean, lower={noisy: result.lower[0.95]}, upper={noisy: result.upper[0.95]})
    np.testing.assert_array_equal(forecaster.quantile(odd, 0.025), result.lower[0.95])


def test_a_forecast_without_a_scale_is_answered_from_its_interval_levels(tmp_path):
    """A format 2 forecaster given a Forecast that carries no sigma (static intervals only, e.g. built
    from a format 1 bundle's answer) reads its interval ends instead of failing on the missing scale."""
    two = bundle(tmp_path / "2", 2)
    static = bundle(tmp_path / "1", 1).forecast(extreme_windows()["near 1e6"][None, :])
    assert static.sigma is None
    np.testing.assert_array_equal(two.quantile(static, 0.1), static.lower[0.8])
    np.testing.assert_array_equal(two.quantile(static, 0.5), static.mean)
