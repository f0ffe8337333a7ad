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
