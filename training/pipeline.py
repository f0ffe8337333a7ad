"""The training job, end to end. Nothing reaches the registry unless every step succeeded."""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata as pkg
from pathlib import Path

import numpy as np
import pandas as pd

from bundle import (
    BundleMetadata,
    LoadedBundle,
    OnnxForecaster,
    VariantFile,
    write_bundle,
)
from bundle.io import sha256_bytes
from bundle.schema import SplitRange
from bundle.transform import model_inputs, to_price
from training import registry
from training.data import Series, load_series
from training.evaluation import compare_with_naive, conformal_intervals, point_metrics
from training.export import Exported, export, run_onnx
from training.fit import fit
from training.gate import GateDecision, decide
from training.plot import plot_forecast
from training.settings import TrainSettings
from training.splits import MIN_TRAIN_WINDOWS, Part, Splits, make_splits

log = logging.getLogger(__name__)
PACKAGES = ("torch", "lightning", "onnx", "onnxruntime", "numpy", "mlflow")


@dataclass(frozen=True)
class TrainResult:
    metadata: BundleMetadata
    metrics: dict[str, float]
    bundle_path: Path
    parity: float
    decision: GateDecision
    registered: str | None  # "name version N" or None
    dropped_frozen: int
    test_forecasts: pd.DataFrame


def _versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = pkg.version(name)
        except pkg.PackageNotFoundError:
            continue
    return out


def _forecast(model_bytes: bytes, part: Part, splits: Splits) -> np.ndarray:
    return to_price(run_onnx(model_bytes, model_inputs(part.closes, splits.spec)), part.closes, splits.spec)


def _range(part: Part) -> SplitRange:
    return SplitRange(start=part.dates[0].date(), end=part.dates[-1].date(), sessions=len(part))


def build_bundle(
    directory: Path, settings: TrainSettings, series: Series, splits: Splits, exported: Exported,
    name: str, hyper: dict,
) -> tuple[LoadedBundle, dict[str, float], pd.DataFrame]:
    """Evaluate the exported models walk-forward on test and write the bundle."""
    test, val = splits.test, splits.validation
    fp32_test = _forecast(exported.fp32, test, splits)
    int8_test = _forecast(exported.int8, test, splits)
    naive_test = test.closes[:, -1]
    metrics = compare_with_naive(test.next_close, fp32_test, naive_test)
    metrics.update({f"int8_{k}": v for k, v in point_metrics(test.next_close, int8_test).items()})
    metrics["parity_max_abs_diff"] = exported.parity_max_abs_diff
    intervals = conformal_intervals(
        val.next_close, _forecast(exported.fp32, val, splits), settings.coverages, test.next_close, fp32_test
    )
    for i in intervals:
        metrics[f"coverage_{round(i.coverage * 100)}_test"] = float(i.test_coverage)
    meta = BundleMetadata(
        model_name=name, ticker=series.ticker, source=series.description,
        trained_at=datetime.now(UTC).replace(microsecond=0),
        data_start=series.frame["date"].iloc[0].date(), data_end=series.frame["date"].iloc[-1].date(),
        splits={"train": _range(splits.train), "validation": _range(val), "test": _range(test)},
        features=splits.spec, intervals=intervals, metrics=metrics,
        variants={
            "fp32": VariantFile(file="model.onnx", sha256=sha256_bytes(exported.fp32), nodes=exported.fp32_nodes),
            "int8": VariantFile(file="model.int8.onnx", sha256=sha256_bytes(exported.int8), nodes=exported.int8_nodes),
        },
        packages=_versions(), hyperparameters=hyper,
    )
    bundle = write_bundle(directory, meta, {"model.onnx": exported.fp32, "model.int8.onnx": exported.int8})
    # Round trip: the bundle, read back through the serving runtime, must give the same forecasts.
    served = OnnxForecaster(bundle, "fp32").predict(test.closes)
    if not np.allclose(served, fp32_test, rtol=1e-9, atol=1e-9):
        raise RuntimeError("bundle round trip changed the forecasts")
    frame = pd.DataFrame({"date": test.dates.strftime("%Y-%m-%d"), "actual": test.next_close,
                          "forecast": fp32_test, "forecast_int8": int8_test, "naive": naive_test})
    for i in intervals:
        pct = round(i.coverage * 100)
        frame[f"lower_{pct}"] = fp32_test * np.exp(-i.log_halfwidth)
        frame[f"upper_{pct}"] = fp32_test * np.exp(i.log_halfwidth)
    return bundle, metrics, frame


def _gate(settings: TrainSettings, client, name: str, splits: Splits, metrics: dict, work: Path) -> GateDecision:
    current = registry.champion(client, name, settings.alias, work) if client else None
    champion_mae = None
    if current is not None:
        version, bundle = current
        try:
            forecaster = OnnxForecaster(bundle, "fp32")
            if forecaster.window != splits.spec.window:
                raise ValueError(f"champion window {forecaster.window} != {splits.spec.window}")
            champion_mae = point_metrics(splits.test.next_close, forecaster.predict(splits.test.closes))["mae"]
            log.info("champion version %s: MAE %.4f on this test window", version, champion_mae)
        except Exception as exc:
            log.warning("champion version %s cannot be evaluated on this window: %s", version, exc)
    return decide(metrics["mae"], metrics["naive_mae"], settings.naive_margin, champion_mae)


def run(settings: TrainSettings) -> TrainResult:
    min_windows = settings.validation_sessions + settings.test_sessions + MIN_TRAIN_WINDOWS
    series = load_series(settings, min_windows)  # fails before anything touches MLflow
    print(f"data: {series.description}: {len(series.frame)} sessions "
          f"{series.frame['date'].iloc[0]:%Y-%m-%d}..{series.frame['date'].iloc[-1]:%Y-%m-%d}"
          + (f", {series.dropped_frozen} zero-volume sessions dropped" if series.dropped_frozen else ""))
    splits = make_splits(series.frame, settings.window, settings.target,
                         settings.validation_sessions, settings.test_sessions)
    name = settings.registered_name
    hyper = {k: getattr(settings, k) for k in ("target", "window", "hidden", "layers", "dropout",
                                                "learning_rate", "batch_size", "max_epochs", "patience", "seed")}
    out_dir = settings.output_dir
    with tempfile.TemporaryDirectory(prefix="forecaster-") as tmp:
        work = Path(tmp)
        if not settings.registry:
            return _finish(settings, series, splits, name, hyper, None, None, work, out_dir)
        import mlflow
        from lightning.pytorch.loggers import MLFlowLogger

        client, experiment_id = registry.connect(settings)
        with mlflow.start_run(experiment_id=experiment_id) as active:
            mlflow.log_params({**hyper, "ticker": series.ticker, "source": settings.source,
                               "validation_sessions": settings.validation_sessions,
                               "test_sessions": settings.test_sessions, "naive_margin": settings.naive_margin})
            logger = MLFlowLogger(experiment_name=settings.experiment, tracking_uri=settings.tracking_uri,
                                  run_id=active.info.run_id)
            return _finish(settings, series, splits, name, hyper, client, logger, work, out_dir)


def _finish(settings, series, splits, name, hyper, client, logger, work: Path, out_dir: Path) -> TrainResult:
    module, fit_info = fit(splits, settings, logger)
    exported = export(module, splits.test.features(splits.spec)[0])
    staged = work / "bundle"
    bundle, metrics, forecasts = build_bundle(staged, settings, series, splits, exported, name, hyper)
    metrics.update({k: float(v) for k, v in fit_info.items()})
    decision = _gate(settings, client, name, splits, metrics, work / "champion")
    plot = plot_forecast(work / "forecast.png", splits.test.dates, splits.test.next_close,
                         forecasts["forecast"].to_numpy(), forecasts["naive"].to_numpy(), bundle.metadata.intervals,
                         f"{series.ticker}: D+1 forecast on test (MAE/naive {metrics['mae_ratio']:.3f})")
    forecasts.to_csv(work / "test_forecasts.csv", index=False)
    registered = None
    if client is not None:
        import mlflow

        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        mlflow.log_artifacts(str(staged), registry.BUNDLE_ARTIFACT_PATH)
        mlflow.log_artifact(str(plot))
        mlflow.log_artifact(str(work / "test_forecasts.csv"))
        tags = {**decision.as_tags(), "mae": f"{metrics['mae']:.6f}", "naive_mae": f"{metrics['naive_mae']:.6f}",
                "mae_ratio": f"{metrics['mae_ratio']:.6f}", "ticker": series.ticker,
                "data_end": str(bundle.metadata.data_end)}
        mlflow.set_tags(tags)
        run_id = mlflow.active_run().info.run_id
        version = registry.register(client, name, run_id, tags)
        if decision.promote:
            client.set_registered_model_alias(name, settings.alias, version)
        registered = f"{name} version {version}" + (f" (@{settings.alias})" if decision.promote else "")
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / "bundle"
    if final.exists():
        shutil.rmtree(final)
    shutil.copytree(staged, final)
    for extra in (plot, work / "test_forecasts.csv"):
        shutil.copy2(extra, out_dir / extra.name)
    return TrainResult(bundle.metadata, metrics, final.resolve(), exported.parity_max_abs_diff,
                       decision, registered, series.dropped_frozen, forecasts)
