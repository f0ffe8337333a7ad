"""Prometheus metrics of the predictor, correct across kserve's worker processes.

The process always runs in prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR is set
by __main__ before anything imports prometheus_client), and /metrics aggregates every worker's
files, so successive scrapes agree whichever worker answers.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as mp

# 50 µs .. 2.5 s: a batch-1 ONNX inference takes ~60-100 µs, so kserve's 5 ms floor hides it.
LATENCY_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip

REQUEST_LATENCY = Histogram(
    "forecaster_request_duration_seconds",
    "Wall time of an inference request, from the first body byte to the response",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
INFERENCE_LATENCY = Histogram(
    "forecaster_inference_duration_seconds",
    "onnxruntime time per request (scaling included)",
    ["model"],
    buckets=LATENCY_BUCKETS,
)
REQUESTS = Counter(
    "forecaster_requests_total", "Inference requests by route and status code", ["route", "code"]
)
PREDICTIONS = Counter(
    "forecaster_predictions_total", "Forecasts served (one per batch row)", ["model", "version"]
)
REJECTED = Counter("forecaster_rejected_requests_total", "Requests refused with a 4xx, by reason", ["reason"])
RELOADS = Counter("forecaster_reloads_total", "Model (re)loads by result", ["model", "result"])
MODEL_INFO = Gauge(
    "forecaster_model_info",
    "1 for the bundle being served (0 for ones served before)",
    ["model", "version", "variant", "ticker", "trained_at", "data_end"],
    multiprocess_mode="livemax",
)
MODEL_READY = Gauge(
    "forecaster_model_ready",
    "1 when a checked model is serving",
    ["model"],
    multiprocess_mode="livemin",
)


ROUTES = ("v2_infer", "v1_predict", "timeseries")


def init_route_series() -> None:
    """Create each route's series at zero, so rates and ratios exist before the first request."""
    for route in ROUTES:
        REQUEST_LATENCY.labels(route)
        REQUESTS.labels(route, "200")


def init_model_series(model: str, version: str) -> None:
    INFERENCE_LATENCY.labels(model)
    PREDICTIONS.labels(model, version)
    RELOADS.labels(model, "failure")


def exposition() -> tuple[bytes, str]:
    """All workers' metrics, aggregated (or this process's registry outside multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
