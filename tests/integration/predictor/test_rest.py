"""Open Inference Protocol v2 and v1 over REST, and the time-series route, on the real server."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from bundle import OnnxForecaster, load_bundle
from bundle.transform import model_inputs, to_price
from tests.integration.servers import timeseries_body

pytestmark = pytest.mark.slow


def test_health_and_server_metadata(served):
    assert served.get("/v2/health/live").json() == {"live": True}
    assert served.get("/v2/health/ready").json() == {"ready": True}
    assert served.get("/v2").json()["name"]
    assert served.get("/v2/models/aapl/ready").status_code == 200
    assert served.get("/v1/models").json() == {"models": ["aapl"]}
    assert served.get("/v1/models/aapl").json() == {"name": "aapl", "ready": True}


def test_model_metadata_states_real_names_types_shapes_and_version(served, trained):
    meta = served.get("/v2/models/aapl").json()
    assert meta["inputs"] == [{"name": "closes", "datatype": "FP64", "shape": [-1, 60]}]
    assert [o["name"] for o in meta["outputs"]] == [
        "forecast",
        "lower_80",
        "upper_80",
        "lower_95",
        "upper_95",
    ]
    assert all(o["datatype"] == "FP64" and o["shape"] == [-1] for o in meta["outputs"])
    assert meta["platform"] == "onnxruntime_onnx"
    assert meta["versions"] and meta["versions"][0].startswith("aapl-forecaster:")


def test_unknown_model_is_404(served, windows):
    body = {"inputs": [{"name": "closes", "shape": [1, 60], "datatype": "FP64", "data": windows[0].tolist()}]}
    assert served.post("/v2/models/nope/infer", json=body).status_code == 404


def test_v2_predictions_equal_onnxruntime_and_the_training_forecasts(served, trained, windows):
    _, result = trained
    response = served.infer(windows)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: np.asarray(o["data"]) for o in response.json()["outputs"]}
    # 1. onnxruntime on the bundle file, scaled by the bundle's own JSON scaler, its log return over the
    # last close times the bundle's point weight (0, naive, unless validation showed evidence).
    bundle = load_bundle(result.bundle_path)
    spec = bundle.metadata.features
    session = ort.InferenceSession(str(bundle.model_path("fp32")), providers=["CPUExecutionProvider"])
    raw = session.run(None, {"x": model_inputs(windows, spec)})[0].reshape(-1)
    last, weight = windows[:, -1], bundle.metadata.point_weight
    served = last * np.exp(weight * np.log(to_price(raw, windows, spec) / last))
    np.testing.assert_allclose(outputs["forecast"], served, rtol=1e-6)
    # 2. the training pipeline's own test-set forecasts and interval bounds.
    expected = result.test_forecasts
    np.testing.assert_allclose(outputs["forecast"], expected["forecast"], rtol=1e-6)
    for pct in (80, 95):
        np.testing.assert_allclose(outputs[f"lower_{pct}"], expected[f"lower_{pct}"], rtol=1e-6)
        np.testing.assert_allclose(outputs[f"upper_{pct}"], expected[f"upper_{pct}"], rtol=1e-6)
    assert (outputs["lower_95"] < outputs["lower_80"]).all() and (
        outputs["lower_80"] < outputs["forecast"]
    ).all()


def test_fp32_input_datatype_is_accepted(served, windows):
    response = served.infer(windows[:2], datatype="FP32")
    assert response.status_code == 200
    assert response.json()["outputs"][0]["shape"] == [2]


def test_request_id_is_echoed(served, windows):
    body = {"id": "req-42", "inputs": [{"name": "closes", "shape": [1, 60], "datatype": "FP64",
                                        "data": windows[0].tolist()}]}  # fmt: skip
    assert served.post("/v2/models/aapl/infer", json=body).json()["id"] == "req-42"


def test_v1_predict_with_instances(served, trained, windows):
    response = served.post("/v1/models/aapl:predict", json={"instances": windows[:3].tolist()})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    np.testing.assert_allclose(
        [p["forecast"] for p in predictions], trained[1].test_forecasts["forecast"][:3], rtol=1e-6
    )
    assert set(predictions[0]) == {"forecast", "lower_80", "upper_80", "lower_95", "upper_95"}


def test_timeseries_forecast_mean_quantiles_and_widening(served, trained, windows):
    body = {
        "model": "aapl",
        "inputs": [{"type": "univariate_time_series", "name": "aapl", "series": windows[0].tolist(),
                    "frequency": "D", "start_timestamp": "2024-01-01T00:00:00"}],
        "options": {"horizon": 5, "quantiles": [0.025, 0.1, 0.5, 0.9, 0.975]},
    }  # fmt: skip
    response = served.post("/v1/timeseries/forecast", json=body)
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["status"] == "completed" and out["model"] == "aapl"
    forecast = out["outputs"][0]["content"][0]
    mean, q = (
        np.asarray(forecast["mean_forecast"]),
        {k: np.asarray(v) for k, v in forecast["quantiles"].items()},
    )
    assert len(mean) == 5 and mean[0] == pytest.approx(trained[1].test_forecasts["forecast"][0], rel=1e-6)
    np.testing.assert_allclose(q["0.5"], mean)
    assert (q["0.025"] < q["0.1"]).all() and (q["0.1"] < mean).all() and (mean < q["0.9"]).all()
    # Intervals widen with the horizon (sqrt(h) in log space).
    log_width = np.log(q["0.9"] / mean)
    np.testing.assert_allclose(log_width, log_width[0] * np.sqrt(np.arange(1, 6)), rtol=1e-9)
    assert forecast["start_timestamp"] == "2024-03-01T00:00:00"  # 60 daily steps after the start


def test_timeseries_uses_the_last_window_of_a_longer_series(served, trained):
    from training.data import read_sample

    series = read_sample()["close"].to_numpy()[-300:-120]
    response = served.post("/v1/timeseries/forecast", json=timeseries_body("aapl", series.tolist()))
    assert response.status_code == 200, response.text
    got = response.json()["outputs"][0]["content"][0]["mean_forecast"][0]
    forecaster = OnnxForecaster(load_bundle(trained[1].bundle_path))
    last, first = forecaster.predict(series[None, -60:])[0], forecaster.predict(series[None, :60])[0]
    assert got == pytest.approx(last, rel=1e-9)
    assert abs(last - first) > 1e-3 * last  # the first window would have given another answer
