"""The real pipeline on the packaged sample: Lightning, ONNX, onnxruntime and MLflow (SQLite)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from mlflow import MlflowClient

from bundle import BundleError, OnnxForecaster, load_bundle
from tests.conftest import REPO, fast_settings
from training import pipeline
from training.__main__ import main as training_main
from training.export import PARITY_TOLERANCE
from training.quantize import MIN_INT8_SHARE, int8_share

pytestmark = pytest.mark.slow


def client_for(settings) -> MlflowClient:
    return MlflowClient(settings.tracking_uri, settings.tracking_uri)


def test_first_run_registers_version_1_as_champion(trained):
    settings, result = trained
    client = client_for(settings)
    assert str(client.get_model_version_by_alias("aapl-forecaster", "champion").version) == "1"
    tags = client.get_model_version("aapl-forecaster", "1").tags
    assert tags["gate.decision"] == "promoted" and "no current champion" in tags["gate.reasons"]
    assert result.metrics["naive_mae"] > 0 and result.metrics["mae_ratio"] == pytest.approx(
        result.metrics["mae"] / result.metrics["naive_mae"]
    )


def test_onnx_matches_torch_and_int8_is_really_quantized(trained):
    _, result = trained
    assert result.parity <= PARITY_TOLERANCE
    bundle = load_bundle(result.bundle_path)
    fp32 = onnx.load(bundle.model_path("fp32"))
    int8 = onnx.load(bundle.model_path("int8"))
    assert [n.op_type for n in fp32.graph.node].count("LSTM") == 2
    ops = [n.op_type for n in int8.graph.node]
    assert ops.count("DynamicQuantizeLSTM") == 2 and "LSTM" not in ops
    assert int8_share(bundle.model_path("int8").read_bytes()) >= MIN_INT8_SHARE
    assert fp32.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"  # dynamic batch
    assert "int8_mae" in result.metrics


def test_bundle_reproduces_the_pipeline_test_forecasts(trained):
    _, result = trained
    bundle = load_bundle(result.bundle_path)
    meta = bundle.metadata
    assert meta.splits["test"].sessions == 120 and meta.features.window == 60
    forecasts = result.test_forecasts
    closes = result.bundle_path.parent / "test_forecasts.csv"
    assert closes.is_file()
    # Rebuild the test windows from the sample and run them through the serving runtime.
    from training.data import read_sample

    series = read_sample()["close"].to_numpy()
    windows = np.lib.stride_tricks.sliding_window_view(series, 60)[-121:-1]
    served = OnnxForecaster(bundle, "fp32").predict(windows)
    np.testing.assert_allclose(served, forecasts["forecast"].to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(forecasts["actual"].to_numpy(), series[-120:])
    # Recorded coverages are the shares of test actuals inside the recorded bounds: the served
    # (volatility-adaptive) bands in the metrics, the static reference in the bundle's intervals.
    actual = forecasts["actual"].to_numpy()
    for interval in meta.intervals:
        pct = round(interval.coverage * 100)
        inside = (actual >= forecasts[f"lower_{pct}"]) & (actual <= forecasts[f"upper_{pct}"])
        assert result.metrics[f"coverage_{pct}_test"] == pytest.approx(inside.mean(), abs=1e-12)
        static = (actual >= forecasts[f"static_lower_{pct}"]) & (actual <= forecasts[f"static_upper_{pct}"])
        assert interval.test_coverage == pytest.approx(static.mean(), abs=1e-12)
        lo, hi = interval.bounds(forecasts["forecast"].to_numpy())
        np.testing.assert_allclose(forecasts[f"static_lower_{pct}"], lo, rtol=1e-12)
        np.testing.assert_allclose(forecasts[f"static_upper_{pct}"], hi, rtol=1e-12)
    assert [i.coverage for i in meta.intervals] == [0.8, 0.95] and 0 < meta.intervals[0].log_halfwidth < 0.2


def test_the_distribution_is_calibrated_on_the_750_windows_before_test(trained):
    """Recomputed from the bundle alone: the served point and EWMA sigma over the 750 windows before
    test (120 validation + 630 training), and the conformal |z| quantiles stored in the bundle."""
    from bundle.distribution import conformal_quantile
    from training.data import read_sample

    settings, result = trained
    bundle = load_bundle(result.bundle_path)
    dist = bundle.metadata.distribution
    assert settings.calibration_sessions == 750 and dist.calibration_sessions == 750
    series = read_sample()["close"].to_numpy()
    pairs = np.lib.stride_tricks.sliding_window_view(series, 61)[-120 - 750 : -120]
    windows, actual = pairs[:, :60], pairs[:, 60]
    point = OnnxForecaster(bundle, "fp32").predict(windows)
    scores = np.abs(np.log(actual / point)) / dist.sigma(windows)
    for c in (0.5, 0.8, 0.95):
        assert dist.score_quantiles[dist.levels.index(c)] == pytest.approx(conformal_quantile(scores, c))
    assert 0.9 < result.metrics["calibration_train_mae_ratio"] < 1.1  # in-sample, still ~ naive


def test_run_logs_params_epoch_metrics_and_plot(trained):
    settings, _ = trained
    client = client_for(settings)
    version = client.get_model_version("aapl-forecaster", "1")
    run = client.get_run(version.run_id)
    assert run.data.params["target"] == "log_return" and "mae" in run.data.metrics
    assert len(client.get_metric_history(run.info.run_id, "val_loss")) >= 1  # per epoch, via MLFlowLogger
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"forecast.png", "test_forecasts.csv"} <= names
    assert "bundle" not in names, "the bundle is the run's logged model, not a copy among its artifacts"


def test_the_bundle_is_one_logged_model_carrying_the_metrics_and_registered_from_it(trained):
    """What an MLflow user sees: the run's one LoggedModel (search_logged_models), the evaluation
    metrics on it, its hyperparameters as params, version 1 registered from `models:/<model_id>`,
    an input example of real closes, and `mlflow.pyfunc.load_model` by alias answering as served."""
    import mlflow
    from mlflow.models import Model

    from training.data import read_sample

    settings, result = trained
    client = client_for(settings)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    version = client.get_model_version("aapl-forecaster", "1")
    experiment = client.get_experiment_by_name(settings.experiment).experiment_id
    models = mlflow.search_logged_models(experiment_ids=[experiment], output_format="list")
    (model,) = [m for m in models if m.source_run_id == version.run_id]
    assert model.name == "aapl-forecaster" and str(model.status) == "READY"
    assert version.source == f"models:/{model.model_id}"
    assert json.loads(model.tags["mlflow.modelVersions"]) == [{"name": "aapl-forecaster", "version": 1}]
    on_model = {m.key: m.value for m in model.metrics}
    finite = {k: v for k, v in result.metrics.items() if np.isfinite(v)}
    assert on_model.keys() == finite.keys() and {"mae", "mae_ratio", "winkler_80"} <= on_model.keys()
    assert all(on_model[k] == pytest.approx(v, rel=1e-12) for k, v in finite.items())
    assert model.params["window"] == "60" and model.params["architecture"] == "lstm"

    local = mlflow.artifacts.download_artifacts(f"models:/{model.model_id}")
    info = Model.load(local)
    assert info.signature.inputs.inputs[0].shape == (-1, 60)
    example = info.load_input_example(local)["closes"]  # a named tensor: the last 60 closes it read
    np.testing.assert_array_equal(example, read_sample()["close"].to_numpy()[None, -60:])
    answer = mlflow.pyfunc.load_model("models:/aapl-forecaster@champion").predict(example)
    forecaster = OnnxForecaster(load_bundle(result.bundle_path), "fp32")
    served = forecaster.forecast(example)
    for out in forecaster.outputs:
        np.testing.assert_allclose(answer[out.name], out.values(served)[:, 0], rtol=0, atol=1e-9)


def test_the_report_and_the_run_show_the_online_replay_beside_the_bundles_calibration(trained):
    """The served intervals will be the online state's: its replay on test is in the run's metrics
    and in the CLI table, in rows named so, beside the bundle's calibration (the fallback)."""
    from training.report import summary

    settings, result = trained
    run = client_for(settings).get_run(client_for(settings).get_model_version("aapl-forecaster", "1").run_id)
    for key in ("online_coverage_80", "online_coverage_95", "online_winkler_80", "online_winkler_95",
                "online_pinball", "point_weight_best", "point_weight_dm_p"):  # fmt: skip
        assert run.data.metrics[key] == pytest.approx(result.metrics[key])
    assert 0.5 < result.metrics["online_coverage_80"] < 1.0
    text = summary(result)
    for row in ("80% online recalibrated (served)", "80% bundle calibration (EWMA-conformal; fallback)",
                "95% static split conformal (format 1)"):  # fmt: skip
        assert row in text
    assert f"{result.metrics['online_winkler_80']:.4f}" in text


def test_second_identical_run_registers_version_2_but_the_gate_refuses_it(trained, tmp_path):
    settings, first = trained
    second = pipeline.run(settings.model_copy(update={"output_dir": tmp_path / "out2"}))
    client = client_for(settings)
    # Deterministic training: same data, same seed -> same MAE, which does not *beat* the champion.
    assert second.metrics["mae"] == pytest.approx(first.metrics["mae"], rel=1e-9)
    assert not second.decision.promote
    assert str(client.get_model_version_by_alias("aapl-forecaster", "champion").version) == "1"
    tags = client.get_model_version("aapl-forecaster", "2").tags
    assert tags["gate.decision"] == "rejected" and "does not beat champion" in tags["gate.reasons"]


def test_gate_refuses_a_model_worse_than_naive_and_leaves_no_alias(tmp_path):
    # A negative margin demands beating naive by 50%: no daily-close model does.
    settings = fast_settings(tmp_path, naive_margin=0.0, model_name="strict", max_epochs=1)
    settings = settings.model_copy(update={"naive_margin": -0.5})
    result = pipeline.run(settings)
    client = client_for(settings)
    assert not result.decision.promote and "> naive" in result.decision.reasons[0]
    assert client.get_model_version("strict", "1").tags["gate.decision"] == "rejected"
    assert "champion" not in client.get_registered_model("strict").aliases


def run_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "training", *args],
        cwd=cwd,
        capture_output=True,
        check=False,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO)},
    )


@pytest.mark.parametrize(
    "content,message",
    [
        ("date,close\n2024-01-02,10\n2024-01-02,11\n", "duplicate date at row 2"),
        ("date,close\n2024-01-03,10\n2024-01-02,11\n", "not ascending at row 2"),
        ("date,close\n2024-01-02,10\n2024-01-03,\n", "NaN or missing close at row 2"),
        ("date,close\n2024-01-02,10\n2024-01-03,-1\n", "non-positive close -1 at row 2"),
        ("date,close\n2024-01-02,10\n2024-01-03,11\n", "too few rows: 2 sessions"),
    ],
)
def test_bad_csv_exits_2_with_a_clear_error_and_registers_nothing(tmp_path, capsys, content, message):
    """In-process (the CLI's own main); the subprocess test below proves the real exit code once."""
    csv = tmp_path / "bad.csv"
    csv.write_text(content)
    db = tmp_path / "mlflow.db"
    code = training_main(["--source", "csv", "--csv", str(csv), "--tracking-uri", f"sqlite:///{db}"])
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert message in err and "nothing was registered" in err
    assert not db.exists()  # the registry was never even opened


def test_the_cli_process_exits_2_on_bad_data(tmp_path):
    csv = tmp_path / "bad.csv"
    csv.write_text("date,close\n2024-01-02,10\n2024-01-02,11\n")
    db = tmp_path / "mlflow.db"
    done = run_cli("--source", "csv", "--csv", str(csv), "--tracking-uri", f"sqlite:///{db}", cwd=tmp_path)
    assert done.returncode == 2 and "duplicate date at row 2" in done.stderr, done.stderr[-2000:]
    assert not db.exists()


def test_a_gru_trains_and_serves_without_an_int8_variant(tmp_path):
    settings = fast_settings(tmp_path, architecture="gru", int8=False, registry=False, max_epochs=1, hidden=8)
    result = pipeline.run(settings)
    bundle = load_bundle(result.bundle_path)
    assert set(bundle.metadata.variants) == {"fp32"}
    assert bundle.metadata.hyperparameters["architecture"] == "gru"
    assert [n.op_type for n in onnx.load(bundle.model_path("fp32")).graph.node].count("GRU") == 2
    assert "int8_mae" not in result.metrics and "forecast_int8" not in result.test_forecasts
    OnnxForecaster(bundle, "fp32").self_test()
    with pytest.raises(BundleError, match="has no 'int8' variant"):
        OnnxForecaster(bundle, "int8")


def test_a_champion_that_cannot_be_fetched_is_not_replaced(tmp_path):
    settings = fast_settings(tmp_path, max_epochs=1, hidden=8)
    assert pipeline.run(settings).decision.promote
    client = client_for(settings)
    (model_file,) = [p for p in settings.artifact_root.rglob("model.onnx")]
    model_file.write_bytes(b"corrupt")  # version 1's stored bundle no longer matches its sha256
    second = pipeline.run(settings)
    assert second.decision.outcome == "champion_unevaluable" and not second.decision.promote
    tags = client.get_model_version(settings.registered_name, "2").tags
    assert tags["gate.decision"] == "champion_unevaluable"
    assert "champion version 1 cannot be evaluated" in tags["gate.reasons"]
    assert str(client.get_model_version_by_alias(settings.registered_name, "champion").version) == "1"


def test_cli_help_lists_every_setting(tmp_path):
    done = run_cli("--help", cwd=tmp_path)
    assert done.returncode == 0
    for flag in (
        "--source",
        "--csv",
        "--target",
        "--tracking-uri",
        "--naive-margin",
        "--no-registry",
    ):
        assert flag in done.stdout


def test_env_prefix_configures_and_cli_overrides(monkeypatch):
    from pydantic_settings import CliApp

    from training.settings import TrainSettings

    monkeypatch.setenv("FORECASTER_TRAIN_TICKER", "VALE3.SA")
    monkeypatch.setenv("FORECASTER_TRAIN_MAX_EPOCHS", "7")
    s = CliApp.run(TrainSettings, cli_args=["--max-epochs", "3"])
    assert s.ticker == "VALE3.SA" and s.max_epochs == 3 and s.registered_name == "vale3-sa-forecaster"


def test_metadata_is_plain_json_with_no_pickle(trained):
    _, result = trained
    meta = json.loads((result.bundle_path / "metadata.json").read_text())
    assert meta["features"]["scaler"]["kind"] == "standard"
    assert sorted(p.name for p in result.bundle_path.iterdir()) == [
        "metadata.json",
        "model.int8.onnx",
        "model.onnx",
    ]


def test_a_failed_export_exits_1_with_one_line_naming_it(monkeypatch, capsys):
    from training.errors import ExportError

    def failing(settings):
        raise ExportError("ONNX parity failed: max |torch - onnx| = 0.3 > 0.0001")

    monkeypatch.setattr(pipeline, "run", failing)
    assert training_main(["--source", "sample", "--no-registry"]) == 1
    err = capsys.readouterr().err
    assert "error: ExportError: ONNX parity failed" in err and "nothing was registered" in err
    assert "Traceback" not in err
