"""The training job, end to end. Nothing reaches the registry unless every step succeeded."""

from __future__ import annotations

import contextlib
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
    BUNDLE_FORMAT_VERSION,
    BundleError,
    BundleMetadata,
    LoadedBundle,
    OnnxForecaster,
    VariantFile,
    write_bundle,
)
from bundle.io import sha256_bytes
from bundle.outputs import columns, level_label, outputs
from bundle.runtime import shrink
from bundle.schema import SplitRange
from bundle.transform import model_inputs, to_price
from rollout import history
from training import registry
from training.calibration import (
    calibration_part,
    choose_point_weight,
    predictive_distribution,
    sigma_floor,
)
from training.data import Series, load_series
from training.errors import BundleRoundTripError
from training.evaluation import (
    compare_with_naive,
    conformal_intervals,
    distribution_bands,
    distribution_scores,
    point_metrics,
    static_scores,
)
from training.export import Exported, export, run_onnx
from training.fit import fit
from training.gate import ChampionScore, GateDecision, decide
from training.online_eval import online_scores
from training.plot import plot_forecast
from training.scores import winkler
from training.settings import TrainSettings
from training.splits import MIN_TRAIN_WINDOWS, Part, Splits, make_splits

log = logging.getLogger(__name__)
PACKAGES = ("torch", "lightning", "onnx", "onnxruntime", "numpy", "mlflow")
HYPERPARAMETERS = (
    "architecture",
    "target",
    "window",
    "hidden",
    "layers",
    "dropout",
    "learning_rate",
    "batch_size",
    "max_epochs",
    "patience",
    "seed",
)


@dataclass(frozen=True)
class TrainResult:
    metadata: BundleMetadata
    metrics: dict[str, float]
    bundle_path: Path
    parity: float
    decision: GateDecision
    registered: str | None  # "name version N" or None
    dropped_frozen: int
    data_warnings: tuple[str, ...]
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
    directory: Path,
    settings: TrainSettings,
    series: Series,
    splits: Splits,
    exported: Exported,
    name: str,
    hyper: dict,
) -> tuple[LoadedBundle, dict[str, float], pd.DataFrame]:
    """Evaluate the exported models walk-forward on test and write the bundle."""
    test, val = splits.test, splits.validation
    naive_test, naive_val = test.closes[:, -1], val.closes[:, -1]
    raw_test = _forecast(exported.fp32, test, splits)
    raw_val = _forecast(exported.fp32, val, splits)
    chosen = choose_point_weight(val.next_close, naive_val, raw_val, settings.point_evidence_level)
    weight = chosen.weight if settings.shrink_to_naive else 1.0
    fp32_test = shrink(raw_test, naive_test, weight)
    val_point = shrink(raw_val, naive_val, weight)
    metrics = compare_with_naive(test.next_close, fp32_test, naive_test)
    metrics["point_weight"] = weight
    metrics["point_weight_best"], metrics["point_weight_dm_p"] = chosen.best, chosen.p_value
    metrics["network_mae_ratio"] = point_metrics(test.next_close, raw_test)["mae"] / metrics["naive_mae"]
    files = {"model.onnx": exported.fp32}
    variants = {"fp32": VariantFile(file="model.onnx", sha256=sha256_bytes(exported.fp32),
                                    nodes=exported.fp32_nodes)}  # fmt: skip
    extra_columns = {"forecast_network": raw_test}
    if exported.int8 is not None:
        int8_test = shrink(_forecast(exported.int8, test, splits), naive_test, weight)
        metrics.update({f"int8_{k}": v for k, v in point_metrics(test.next_close, int8_test).items()})
        files["model.int8.onnx"] = exported.int8
        variants["int8"] = VariantFile(file="model.int8.onnx", sha256=sha256_bytes(exported.int8),
                                       nodes=exported.int8_nodes)  # fmt: skip
        extra_columns["forecast_int8"] = int8_test
    metrics["parity_max_abs_diff"] = exported.parity_max_abs_diff
    intervals = conformal_intervals(val.next_close, val_point, settings.coverages, test.next_close, fp32_test)
    cal = calibration_part(splits.train, val, settings.calibration_sessions)
    cal_point = shrink(_forecast(exported.fp32, cal, splits), cal.closes[:, -1], weight)
    if n_seen := len(cal) - len(val):  # in-sample windows: is the fit there much better than naive?
        seen = slice(0, n_seen)
        metrics["calibration_train_mae_ratio"] = float(
            np.mean(np.abs(cal_point[seen] - cal.next_close[seen]))
            / np.mean(np.abs(cal.closes[seen, -1] - cal.next_close[seen]))
        )
    distribution = predictive_distribution(
        cal.closes, cal.next_close, cal_point, sigma_floor(splits.train.closes), settings.ewma_lambda
    )
    served = distribution_scores(distribution, test.closes, test.next_close, fp32_test, settings.coverages)
    metrics.update(served)
    floor = distribution.sigma_floor
    metrics.update(online_scores(series.frame, splits, val_point, fp32_test, floor, settings.coverages))
    metrics.update(static_scores(intervals, test.next_close, fp32_test))
    for i in intervals:
        label = level_label(i.coverage)
        metrics[f"coverage_{label}_test"] = served[f"coverage_{label}"]
    meta = BundleMetadata(
        format_version=BUNDLE_FORMAT_VERSION,
        model_name=name,
        ticker=series.ticker,
        source=series.description,
        trained_at=datetime.now(UTC).replace(microsecond=0),
        data_start=series.frame["date"].iloc[0].date(),
        data_end=series.frame["date"].iloc[-1].date(),
        splits={"train": _range(splits.train), "validation": _range(val), "test": _range(test)},
        features=splits.spec,
        intervals=intervals,
        point_weight=weight,
        distribution=distribution,
        metrics=metrics,
        variants=variants,
        packages=_versions(),
        hyperparameters=hyper,
    )
    bundle = write_bundle(directory, meta, files)
    # Round trip: the bundle, read back through the serving runtime, must give the same forecasts
    # and bands; the table holds exactly what the predictor would serve for each test window.
    forecaster = OnnxForecaster(bundle, "fp32")
    result = forecaster.forecast(test.closes)
    if not np.allclose(result.mean[:, 0], fp32_test, rtol=1e-9, atol=1e-9):
        raise BundleRoundTripError("bundle round trip changed the forecasts")
    bands, _ = distribution_bands(distribution, test.closes, fp32_test, settings.coverages)
    for c, (lo, hi) in bands.items():
        if not (np.allclose(result.lower[c][:, 0], lo) and np.allclose(result.upper[c][:, 0], hi)):
            raise BundleRoundTripError("bundle round trip changed the intervals")
    frame = pd.DataFrame({"date": test.dates.strftime("%Y-%m-%d"), "actual": test.next_close,
                          **columns(result, forecaster.outputs), **extra_columns, "naive": naive_test,
                          "sigma": result.sigma})  # fmt: skip
    for i in intervals:  # the static split-conformal reference, around the same point forecast
        label = level_label(i.coverage)
        frame[f"static_lower_{label}"], frame[f"static_upper_{label}"] = i.bounds(fp32_test)
    return bundle, metrics, frame


def _score_champion(
    settings: TrainSettings, client, name: str, splits: Splits, work: Path, frame: pd.DataFrame
) -> ChampionScore | None:
    """The champion's MAE and Winkler score per level on this run's test sessions, served exactly as
    it serves (any bundle format; format 2 through the online replay, as the candidate's); None if
    there is none.

    A champion with a shorter window is scored on the trailing part of each test window, so
    changing `--window` does not make the champion incomparable.
    """
    try:
        current = registry.champion(client, name, settings.alias, work)
    except registry.ChampionUnavailableError as exc:
        return ChampionScore(exc.version, error=str(exc))
    if current is None:
        return None
    version, bundle = current
    test = splits.test
    try:
        forecaster = OnnxForecaster(bundle, "fp32")
        window, ours = forecaster.window, splits.spec.window
        if window > ours:
            raise BundleError(f"its window of {window} closes is longer than this run's {ours}")
        result = forecaster.forecast(test.closes[:, -window:], horizon=1)
        dist = bundle.metadata.distribution
        if dist is not None:
            val_point = forecaster.predict(splits.validation.closes[:, -window:])
            online = online_scores(
                frame, splits, val_point, result.mean[:, 0], dist.sigma_floor, tuple(result.lower)
            )
    except BundleError as exc:
        log.warning("champion version %s cannot be evaluated: %s", version, exc)
        return ChampionScore(version, error=str(exc))
    except Exception as exc:  # onnxruntime's untyped errors on a model it loaded
        log.exception("champion version %s failed on this window", version)
        return ChampionScore(version, error=f"{type(exc).__name__}: {exc}")
    mae = point_metrics(test.next_close, result.mean[:, 0])["mae"]
    scores = {
        c: online[f"online_winkler_{level_label(c)}"]
        if dist is not None
        else winkler(test.next_close, result.lower[c][:, 0], result.upper[c][:, 0], c)
        for c in result.lower
    }
    log.info("champion version %s: MAE %.4f on this test window", version, mae)
    return ChampionScore(version, mae=mae, winkler=scores)


def run(settings: TrainSettings) -> TrainResult:
    min_windows = settings.validation_sessions + settings.test_sessions + MIN_TRAIN_WINDOWS
    series = load_series(settings, min_windows)  # fails before anything touches MLflow
    frame = series.frame
    print(
        f"data: {series.description}: {len(frame)} sessions "
        f"{frame['date'].iloc[0]:%Y-%m-%d}..{frame['date'].iloc[-1]:%Y-%m-%d}"
        + (f", {series.dropped_frozen} zero-volume sessions dropped" if series.dropped_frozen else "")
    )
    for warning in series.warnings:
        print(f"data warning: {warning}")
    splits = make_splits(
        frame,
        settings.window,
        settings.target,
        settings.validation_sessions,
        settings.test_sessions,
    )
    name = settings.registered_name
    hyper = {k: getattr(settings, k) for k in HYPERPARAMETERS}
    params = {
        **hyper,
        "ticker": series.ticker,
        "source": settings.source,
        "validation_sessions": settings.validation_sessions,
        "test_sessions": settings.test_sessions,
        "naive_margin": settings.naive_margin,
    }
    with (
        tempfile.TemporaryDirectory(prefix="forecaster-") as tmp,
        registry.tracked_run(settings, params) as (client, logger),
    ):
        work = Path(tmp)
        module, fit_info = fit(splits, settings, logger)
        exported = export(module, splits.test.features(splits.spec)[0], int8=settings.int8)
        staged = work / "bundle"
        bundle, metrics, forecasts = build_bundle(staged, settings, series, splits, exported, name, hyper)
        metrics.update({k: float(v) for k, v in fit_info.items()})
        champion = (
            _score_champion(settings, client, name, splits, work / "champion", frame) if client else None
        )
        winkler_scores = {c: metrics[f"online_winkler_{level_label(c)}"] for c in settings.coverages}
        decision = decide(metrics["mae"], metrics["naive_mae"], settings.naive_margin, champion,
                          winkler=winkler_scores)  # fmt: skip
        reports = _write_reports(work, series, bundle, metrics, forecasts)
        registered = None
        if client is not None:
            example = series.closes[-splits.spec.window :]  # the latest window it read: real closes
            registered = _register(client, settings, name, example, reports, metrics, decision, bundle,
                                   series.warnings)  # fmt: skip
        final = _publish(settings.output_dir, staged, reports)
    return TrainResult(
        bundle.metadata,
        metrics,
        final,
        exported.parity_max_abs_diff,
        decision,
        registered,
        series.dropped_frozen,
        series.warnings,
        forecasts,
    )


def _write_reports(
    work: Path, series: Series, bundle: LoadedBundle, metrics: dict, forecasts: pd.DataFrame
) -> list[Path]:
    """The forecast-vs-actual plot and the test forecasts as CSV (one column per served output)."""
    plot = plot_forecast(
        work / "forecast.png",
        forecasts,
        outputs(i.coverage for i in bundle.metadata.intervals),
        f"{series.ticker}: D+1 forecast on test (MAE/naive {metrics['mae_ratio']:.3f}, "
        f"Winkler 80% {metrics['winkler_80'] / metrics['static_winkler_80']:.2f}x static)",
    )
    table = work / "test_forecasts.csv"
    forecasts.to_csv(table, index=False)
    return [plot, table]


def _register(
    client,
    settings: TrainSettings,
    name: str,
    example: np.ndarray,
    reports: list[Path],
    metrics: dict,
    decision: GateDecision,
    bundle: LoadedBundle,
    data_warnings: tuple[str, ...] = (),
) -> str:
    """Log everything to the active run, the bundle as a LoggedModel (with `example`, real closes,
    as its input example) carrying the evaluation metrics, register a version from it, move the
    alias if the gate passed."""
    import mlflow

    model_id = registry.log_bundle_model(bundle, name, example, bundle.metadata.hyperparameters)
    mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)}, model_id=model_id)
    for path in reports:
        mlflow.log_artifact(str(path))
    tags = {
        **decision.as_tags(),
        **{k: f"{metrics[k]:.6f}" for k in ("mae", "naive_mae", "mae_ratio")},
        "ticker": bundle.metadata.ticker,
        "data_end": str(bundle.metadata.data_end),
        "data.warnings": "; ".join(data_warnings) or "none",
    }
    mlflow.set_tags(tags)
    run_id = mlflow.active_run().info.run_id
    version = registry.register(client, name, model_id, run_id, tags)
    champion = history.current(client, name, settings.alias)
    if decision.promote:
        client.set_registered_model_alias(name, settings.alias, version)
    # The decision, moved or not, into the champion history; a failure to record it is loud, tagged
    # on this run, and neither undoes nor blocks the move.
    move = history.Move(
        model=name, alias=settings.alias, from_version=champion,
        to_version=version if decision.promote else champion, decision=decision.outcome,
        reason="; ".join(decision.reasons), candidate=version, training_run_id=run_id,
        **history.Workload().who(),
    )  # fmt: skip
    recorded = history.record_or_warn(client, move)
    if not recorded:
        with contextlib.suppress(Exception):  # counted where training runs are searched, if MLflow lets us
            mlflow.set_tag("champion_history", "not recorded")
    note = "" if recorded else "; NOT in the champion history (see the log)"
    return f"{name} version {version}" + (f" (@{settings.alias})" if decision.promote else "") + note


def _publish(out_dir: Path, staged: Path, reports: list[Path]) -> Path:
    """Copy the bundle and reports to the output directory (after registration succeeded)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / "bundle"
    if final.exists():
        shutil.rmtree(final)
    shutil.copytree(staged, final)
    for path in reports:
        shutil.copy2(path, out_dir / path.name)
    return final.resolve()
