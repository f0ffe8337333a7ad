"""The monitor's gauges, labelled with the model and the version that was scored."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

LABELS = ["model", "version"]
MAE = Gauge(
    "forecaster_realized_mae", "Champion's realized D+1 MAE over the last N sessions (price units)", LABELS
)
NAIVE_MAE = Gauge("forecaster_realized_naive_mae", "Naive forecast's MAE over the same sessions", LABELS)
RATIO = Gauge("forecaster_realized_mae_ratio", "Realized MAE / naive MAE over the same sessions", LABELS)
COVERAGE = Gauge(
    "forecaster_realized_interval_coverage", "Share of the N sessions inside the conformal interval",
    [*LABELS, "coverage"],
)  # fmt: skip
WINKLER = Gauge(
    "forecaster_realized_interval_score",
    "Mean Winkler interval score of the served interval over the N sessions (price units)",
    [*LABELS, "coverage"],
)
SESSIONS = Gauge("forecaster_realized_sessions", "Sessions the realized metrics cover", LABELS)
LATEST_CLOSE = Gauge(
    "forecaster_data_latest_close_timestamp_seconds",
    "Date (00:00 UTC) of the latest published close seen",
    ["model"],
)
LAST_SUCCESS = Gauge(
    "forecaster_monitor_last_success_timestamp_seconds", "When the last evaluation succeeded", ["model"]
)
RUNS = Counter("forecaster_monitor_runs_total", "Evaluations by result", ["model", "result"])
LAST_RUN_OK = Gauge(
    "forecaster_monitor_last_run_ok",
    "1 if the model's last evaluation succeeded, 0 if it failed (no champion yet, data source down): "
    "its other gauges then keep their last values",
    ["model"],
)
INTERVAL_ONLINE = Gauge(
    "forecaster_realized_interval_online",
    "1 if the realized coverage and interval score judge the online calibration's bands (replayed, "
    "as the predictor serves them), 0 if the bundle's (format 1, or too few sessions)",
    LABELS,
)
CALIBRATION_AS_OF = Gauge(
    "forecaster_monitor_calibration_as_of_timestamp_seconds",
    "As-of session (00:00 UTC) of the model's online calibration state, as stored",
    LABELS,
)
CALIBRATION_UPDATED = Gauge(
    "forecaster_monitor_calibration_updated_timestamp_seconds",
    "When the model's online calibration state was computed (the predictor ignores it past its bound)",
    LABELS,
)
CALIBRATION_SIGMA = Gauge(
    "forecaster_monitor_calibration_next_sigma",
    "The state's range-based sigma of the next session's log return (the latest window's scale)",
    LABELS,
)
CALIBRATION_SCORES = Gauge(
    "forecaster_monitor_calibration_scores",
    "Realized normalized scores in the state (the predictor serves it from 100)",
    LABELS,
)
CALIBRATION_RUNS = Counter(
    "forecaster_monitor_calibration_runs_total",
    "Online calibration state computed and stored, by result (failure: the store or the API refused, "
    "or too few sessions; retried next run)",
    ["model", "result"],
)
BY_VERSION = (INTERVAL_ONLINE, CALIBRATION_AS_OF, CALIBRATION_UPDATED, CALIBRATION_SIGMA, CALIBRATION_SCORES)
