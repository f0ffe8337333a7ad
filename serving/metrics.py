"""The request metrics the guard counts (predictor and transformer), correct across kserve's workers:
each process runs in prometheus_client's multiprocess mode (`python -m` sets PROMETHEUS_MULTIPROC_DIR
first, serving.cli), and /metrics aggregates every worker's files, whichever worker answers."""

from __future__ import annotations

import os

import prometheus_client as prom
from prometheus_client import Counter, Histogram, multiprocess

# 50 µs .. 2.5 s: a batch-1 ONNX inference takes ~60-100 µs, so kserve's 5 ms floor hides it.
LATENCY_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


def latency(name: str, documentation: str, label: str) -> Histogram:
    """A latency histogram with LATENCY_BUCKETS, by one label."""
    return Histogram(name, documentation, [label], buckets=LATENCY_BUCKETS)


REQUEST_LATENCY = latency(
    "forecaster_request_duration_seconds",
    "Wall time of an inference request, from the first body byte to the response",
    "route",
)
REQUESTS = Counter(
    "forecaster_requests_total", "Inference requests by route and status code", ["route", "code"]
)
REJECTED = Counter("forecaster_rejected_requests_total", "Requests refused with a 4xx, by reason", ["reason"])

ROUTES = ("v2_infer", "v1_predict", "timeseries")


def init_route_series() -> None:
    """Create each route's series at zero, so rates and ratios exist before the first request."""
    for route in ROUTES:
        REQUEST_LATENCY.labels(route)
        REQUESTS.labels(route, "200")


def exposition() -> tuple[bytes, str]:
    """All workers' metrics, aggregated (or this process's registry outside multiprocess mode)."""
    registry = prom.REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = prom.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return prom.generate_latest(registry), prom.CONTENT_TYPE_LATEST
