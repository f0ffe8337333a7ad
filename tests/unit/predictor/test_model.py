"""The kserve Model in-process on a tiny bundle: load, serve, refuse, keep the old model on failure."""

from __future__ import annotations

import json

import numpy as np
import pytest
from kserve.protocol.infer_type import InferInput, InferRequest

from bundle.schema import METADATA_FILE
from serving.errors import NotReadyError, Rejected
from tests.tiny_bundle import INTERVALS, WINDOW, expected_forecast, windows, write_tiny_bundle
from tests.unit.predictor.conftest import make_model


def v2(rows: np.ndarray, request_id: str = "r1") -> InferRequest:
    inp = InferInput("closes", list(rows.shape), "FP64", rows.tolist())
    return InferRequest("tiny", infer_inputs=[inp], request_id=request_id)


def answer(model, payload):
    return model.predict(model.preprocess(payload))


def test_v2_answer_is_the_bundles_forecast_with_its_intervals(model):
    rows = windows(3)
    response = answer(model, v2(rows))
    out = {o.name: np.asarray(o.data) for o in response.outputs}
    expected = expected_forecast(rows)
    assert out["forecast"] == pytest.approx(expected, rel=1e-6)
    for interval in INTERVALS:
        label = f"{interval.coverage * 100:g}"
        assert out[f"lower_{label}"] == pytest.approx(expected * np.exp(-interval.log_halfwidth), rel=1e-6)
        assert out[f"upper_{label}"] == pytest.approx(expected * np.exp(interval.log_halfwidth), rel=1e-6)
    assert response.id == "r1" and response.model_name == "tiny"


def test_v1_answer_matches_v2(model):
    rows = windows(2)
    predictions = answer(model, {"instances": rows.tolist()})["predictions"]
    assert [p["forecast"] for p in predictions] == pytest.approx(expected_forecast(rows), rel=1e-6)
    assert set(predictions[0]) == {"forecast", "lower_80", "upper_80", "lower_95", "upper_95"}


def test_metadata_declares_the_window_and_every_output(model):
    assert model.get_input_types() == [{"name": "closes", "datatype": "FP64", "shape": [-1, WINDOW]}]
    names = [o["name"] for o in model.get_output_types()]
    assert names == ["forecast", "lower_80", "upper_80", "lower_95", "upper_95"]


def test_before_loading_it_is_not_ready_and_refuses_with_kserves_error(tiny_dir):
    m = make_model(tiny_dir)
    assert not m.ready
    with pytest.raises(NotReadyError) as caught:
        m.preprocess(v2(windows(1)))
    assert caught.value.reason  # kserve's gRPC interceptor reads .reason
    assert [o["name"] for o in m.get_output_types()] == ["forecast"]
    assert m.get_input_types()[0]["shape"] == [-1, -1]


def test_a_bad_request_never_reaches_the_model(model):
    with pytest.raises(Rejected, match="window length is 3"):
        model.preprocess(v2(windows(1)[:, :3]))


def test_the_batch_limit_is_the_settings(tiny_dir):
    m = make_model(tiny_dir, max_batch=2)
    assert m.try_reload()
    with pytest.raises(Rejected, match="batch of 3 is over the limit of 2"):
        m.preprocess(v2(windows(3)))


def test_int8_variant_serves_close_to_fp32(tiny_dir):
    m = make_model(tiny_dir, variant="int8")
    assert m.try_reload() and m.served.forecaster.variant == "int8"
    rows = windows(2)
    out = answer(m, v2(rows)).outputs[0].data
    assert np.asarray(out) == pytest.approx(expected_forecast(rows), rel=5e-3)


def test_a_corrupt_new_version_keeps_the_old_model_and_is_not_retried(tmp_path):
    write_tiny_bundle(tmp_path)
    m = make_model(tmp_path)
    assert m.try_reload()
    old = m.served
    meta = json.loads((tmp_path / METADATA_FILE).read_text())
    meta["trained_at"] = "2025-01-01T00:00:00Z"  # a new version label
    (tmp_path / METADATA_FILE).write_text(json.dumps(meta))
    (tmp_path / "model.onnx").write_bytes(b"tampered")
    assert not m.try_reload()
    assert m.served is old and m.ready
    assert not m.try_reload()  # remembered as failed: not fetched again
    assert "tiny:20250101T000000" in m._failed


def test_a_model_that_fails_its_self_test_is_never_served(tmp_path):
    write_tiny_bundle(tmp_path, bias=500.0)  # forecasts e^10 times the last close
    m = make_model(tmp_path)
    assert not m.try_reload()
    assert m.served is None and not m.ready


def test_a_missing_bundle_is_not_ready_not_a_crash(tmp_path):
    m = make_model(tmp_path / "nothing-here")
    assert not m.try_reload() and not m.ready


def test_a_bad_bundle_is_one_log_line_and_a_bug_is_a_traceback(tmp_path, caplog, monkeypatch):
    write_tiny_bundle(tmp_path, bias=500.0)
    m = make_model(tmp_path)
    with caplog.at_level("WARNING", logger="predictor.model"):
        assert not m.try_reload()
    (record,) = caplog.records
    assert "self-test" in record.getMessage() and record.exc_info is None
    caplog.clear()

    def broken(ref):
        raise TypeError("a bug")

    monkeypatch.setattr(m.source, "fetch", broken)
    with caplog.at_level("WARNING", logger="predictor.model"):
        assert not m.try_reload()
    (record,) = caplog.records
    assert record.levelname == "ERROR" and record.exc_info and record.exc_info[0] is TypeError


def test_a_new_level_reaches_every_protocol(tmp_path):
    """Adding an interval level is data (training's --coverages), not code: v2, v1, metadata and the
    time-series quantiles all follow the bundle's declared outputs."""
    from bundle.schema import ConformalInterval

    write_tiny_bundle(tmp_path, intervals=(*INTERVALS, ConformalInterval(coverage=0.5, log_halfwidth=0.01)))
    m = make_model(tmp_path)
    assert m.try_reload()
    names = ["forecast", "lower_50", "upper_50", "lower_80", "upper_80", "lower_95", "upper_95"]
    assert [o["name"] for o in m.get_output_types()] == names
    assert [o.name for o in answer(m, v2(windows(1))).outputs] == names
    assert list(answer(m, {"instances": windows(1).tolist()})["predictions"][0]) == names
    from predictor.timeseries import available_quantiles

    assert sorted(available_quantiles(m.served)) == [0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975]


def test_the_server_refuses_to_assemble_without_a_forecast_model(tiny_dir):
    from predictor.model import served_settings

    with pytest.raises(RuntimeError, match="no forecast model"):
        served_settings([object()])
    model = make_model(tiny_dir, max_batch=3)
    assert served_settings([object(), model]).max_batch == 3
